"""The nnsight side of trace_overhead.py; runs in benchmarks/.venv-nnsight (no oversight imports).

    python trace_overhead_nnsight.py MODEL_DIR INPUTS.pt THREADS REPS SAVED.pt

Times a plain forward of the model body and the same forward through ``NNsight(...).trace``
saving every decoder layer's output, interleaved; prints one JSON line of times (seconds) and
writes the first prompt's captured residuals to SAVED.pt (for the exactness check).
"""

from __future__ import annotations

import json
import sys
import time
from importlib.metadata import version
from typing import Any

import nnsight
import torch
from nnsight import NNsight
from transformers import AutoModelForCausalLM


def main() -> None:
    model_dir, inputs_path, threads, reps, saved_path = sys.argv[1:6]
    torch.set_num_threads(int(threads))
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    body = model.base_model
    n_layers = model.config.num_hidden_layers
    inputs = {**torch.load(inputs_path), "use_cache": False}
    wrapped = NNsight(body)

    tiny = {"input_ids": inputs["input_ids"][:1, :8], "attention_mask": inputs["attention_mask"][:1, :8],
            "position_ids": inputs["position_ids"][:1, :8], "use_cache": False}

    def plain(batch: dict[str, Any]) -> None:
        with torch.inference_mode():
            body(**batch)

    def traced(batch: dict[str, Any]) -> list[torch.Tensor]:
        with torch.inference_mode(), wrapped.trace(**batch):
            saved = nnsight.save([])  # nnsight's rule: save the container, append raw values
            for i in range(n_layers):
                saved.append(wrapped.layers[i].output)
        return saved

    captured = traced(inputs)  # warm-up, and the values for the exactness check
    plain(inputs)
    times: dict[str, list[float]] = {"plain": [], "nnsight": [], "tiny_plain": [], "tiny_nnsight": []}
    for batch, prefix, n in ((inputs, "", int(reps)), (tiny, "tiny_", 41)):
        for rep in range(n):
            for mode in ("plain", "nnsight") if rep % 2 == 0 else ("nnsight", "plain"):
                start = time.perf_counter()
                (plain if mode == "plain" else traced)(batch)
                times[prefix + mode].append(time.perf_counter() - start)
    torch.save(torch.stack([h[0] for h in captured]), saved_path)
    print(json.dumps({**times, "version": version("nnsight")}))


if __name__ == "__main__":
    main()
