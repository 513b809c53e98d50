"""What capturing activations costs: our hooks vs a plain forward pass of the same depth (and nnsight).

On the default model (Gemma 3 270M, float32, CPU), for each thread count:

1. plain body — ``model.base_model(...)``: all 18 decoder layers and the final norm, no output layer;
   capture — :func:`oversight.interp.trace.forward_with` recording all 18 residual layers
   (hooks on every layer, stop after the last one). Same depth; the difference is the hooks.
2. what stop-early saves: ``model(..., output_hidden_states=True)`` (the usual transformers way to
   get residuals; runs the 262k-token output layer at every position) vs our capture.
3. the fixed cost of a capture (hooks registered, called and removed, sites looked up) measured on
   a 1×8-token input, where the forward pass is short and the noise of a shared machine is small
   in absolute terms; divided by the big batch's plain time it bounds the overhead better than
   the difference of two noisy medians does.
4. with ``--nnsight``: the same capture through nnsight 0.8 (``NNsight(model.model).trace``, saving
   every layer's output), in its own venv (``bash benchmarks/nnsight_env.sh``), run as a
   subprocess on the same token ids, with its own plain-forward baseline in that process.

Every comparison runs twice, in this order: with glibc's default malloc, then after
:func:`oversight.interp.memory.keep_freed_memory` (the policy the CLI sets for its model
commands; nnsight's process gets the same policy through ``GLIBC_TUNABLES``). A capture keeps
its tensors alive through the pass, and the default malloc hands the freed blocks back to the
kernel after each call, so the next one pays page faults for all of them.

Modes are interleaved within each repetition (order alternating between repetitions) so slow
drifts of a shared machine hit both; the script prints medians, the overhead of the medians and
the median of per-repetition ratios, and the load average. Usage:

    .venv/bin/python benchmarks/trace_overhead.py [--prompts 64] [--tokens 64] [--reps 7] [--threads 1,2] [--nnsight]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from oversight.interp.memory import GLIBC_TUNABLES, keep_freed_memory
from oversight.interp.sites import residual_sites
from oversight.interp.trace import Batch, forward_with, pad
from oversight.models.default import default_model_dir, load_default

HERE = Path(__file__).resolve().parent
WORDS = ["the", "model", "reads", "a", "long", "sentence", "about", "rivers", "cities", "numbers", "and", "old", "books", "then", "it", "answers", "a", "question", "with", "care", "while", "the", "reviewer", "checks", "each", "claim", "against", "the", "source", "and", "writes", "a", "short", "note", "on", "what", "was", "right", "what", "was", "wrong", "and", "why", "the", "answer", "changed", "after", "the", "second", "reading", "of", "the", "page"]


def prompts(tokenizer: object, n: int, tokens: int) -> Batch:
    """``n`` different prompts of exactly ``tokens`` tokens (BOS included): no padding to confound timing."""
    rows = []
    for i in range(n):
        words = [WORDS[(i * 13 + k * (1 + i % 5)) % len(WORDS)] for k in range(3 * tokens)]
        ids = tokenizer(" ".join(words))["input_ids"][:tokens]  # type: ignore[operator]
        assert len(ids) == tokens
        rows.append(ids)
    return pad(rows, pad_id=0)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(modes: dict[str, Callable[[], object]], reps: int) -> dict[str, list[float]]:
    for fn in modes.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {name: [] for name in modes}
    order = list(modes)
    for rep in range(reps):
        for name in order if rep % 2 == 0 else reversed(order):
            times[name].append(timed(modes[name]))
    return times


def report(title: str, times: dict[str, list[float]], base: str) -> dict[str, float]:
    med = {name: statistics.median(ts) for name, ts in times.items()}
    print(f"  {title}")
    out = {}
    for name, ts in times.items():
        line = f"    {name:34} median {med[name] * 1000:8.1f} ms  (min {min(ts) * 1000:.1f}, max {max(ts) * 1000:.1f}, n={len(ts)})"
        if name != base:
            ratio = [t / b for t, b in zip(ts, times[base], strict=True)]
            overhead = 100 * (med[name] / med[base] - 1)
            paired = 100 * (statistics.median(ratio) - 1)
            line += f"  vs {base}: {overhead:+.1f}% (paired {paired:+.1f}%)"
            out[name] = overhead
        print(line)
    return out


def run_nnsight(model_dir: Path, batch: Batch, threads: int, reps: int, *, keep_freed: bool) -> dict[str, object] | None:
    python = HERE / ".venv-nnsight" / "bin" / "python"
    if not python.exists():
        print("  nnsight: benchmarks/.venv-nnsight is missing; run `bash benchmarks/nnsight_env.sh` first")
        return None
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "inputs.pt"
        torch.save({"input_ids": batch.input_ids, "attention_mask": batch.attention_mask, "position_ids": batch.position_ids}, inputs)
        result = subprocess.run(
            [str(python), str(HERE / "trace_overhead_nnsight.py"), str(model_dir), str(inputs), str(threads), str(reps), str(Path(tmp) / "saved.pt")],
            capture_output=True, text=True, check=False,
            env={**os.environ, "GLIBC_TUNABLES": GLIBC_TUNABLES} if keep_freed else None,
        )
        if result.returncode != 0:
            print(f"  nnsight failed:\n{result.stderr[-3000:]}")
            return None
        figures: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
        figures["saved"] = torch.load(Path(tmp) / "saved.pt")
    return figures


def nnsight_figures(args: argparse.Namespace, batch: Batch, threads: int, n_layers: int,
                    capture_all: Callable[[], object], summary: dict[str, object], tag: str) -> None:
    figures = run_nnsight(default_model_dir(), batch, threads, args.reps, keep_freed=bool(tag))
    if figures is None:
        return
    saved = figures.pop("saved")
    full = capture_all()
    exact = all(torch.equal(saved[i], full[f"resid.{i}"][0]) for i in range(n_layers))  # type: ignore[index]
    med_plain, med_nn = statistics.median(figures["plain"]), statistics.median(figures["nnsight"])  # type: ignore[arg-type]
    paired = statistics.median([n / p for n, p in zip(figures["nnsight"], figures["plain"], strict=True)])  # type: ignore[call-overload]
    print(f"  nnsight {figures['version']} (own process): plain body median {med_plain * 1000:.1f} ms, "
          f"capture {n_layers} resid median {med_nn * 1000:.1f} ms: {100 * (med_nn / med_plain - 1):+.1f}% "
          f"(paired {100 * (paired - 1):+.1f}%); first prompt's residuals equal ours bit for bit: {exact}")
    summary[f"nnsight_{threads}t{tag}"] = 100 * (med_nn / med_plain - 1)
    nn_fixed = statistics.median([n - p for n, p in zip(figures["tiny_nnsight"], figures["tiny_plain"], strict=True)])  # type: ignore[call-overload]
    tiny_plain = statistics.median(figures["tiny_plain"])  # type: ignore[arg-type]
    print(f"  nnsight fixed cost {nn_fixed * 1000:.2f} ms per call on 1×8 tokens (plain {tiny_plain * 1000:.1f} ms)"
          f" = {100 * nn_fixed / med_plain:.3f}% of its {args.prompts}×{args.tokens} plain body")
    summary[f"nnsight_fixed_cost_ms_{threads}t{tag}"] = nn_fixed * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--head-prompts", type=int, default=16, help="prompts for the full-forward comparison (its logits are prompts×tokens×262k floats)")
    parser.add_argument("--nnsight", action="store_true", help="also time nnsight (needs benchmarks/.venv-nnsight)")
    args = parser.parse_args()

    lm = load_default()
    model = lm.model
    n_layers = model.config.num_hidden_layers
    sites = residual_sites(model)
    batch = prompts(lm.tokenizer, args.prompts, args.tokens)
    small = Batch(batch.input_ids[: args.head_prompts], batch.attention_mask[: args.head_prompts], batch.lengths[: args.head_prompts], "right")
    inputs = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask, "position_ids": batch.position_ids, "use_cache": False}
    small_inputs = {k: (v[: args.head_prompts] if isinstance(v, torch.Tensor) else v) for k, v in inputs.items()}
    print(f"model: {lm.info.spec} ({n_layers} layers, {lm.info.dtype}), torch {torch.__version__}, batch {args.prompts}×{args.tokens} tokens, "
          f"{args.reps} interleaved repetitions; load average {os.getloadavg()[0]:.2f} at start; {os.cpu_count()} CPUs")

    def plain_body() -> object:
        with torch.inference_mode():
            return model.base_model(**inputs)

    def capture_all() -> object:
        return forward_with(model, batch, capture=sites)

    def full_forward() -> object:
        with torch.inference_mode():
            return model(**small_inputs, output_hidden_states=True)

    def capture_small() -> object:
        return forward_with(model, small, capture=sites)

    tiny_batch = Batch(batch.input_ids[:1, :8], batch.attention_mask[:1, :8], [8], "right")
    tiny_inputs = {"input_ids": tiny_batch.input_ids, "attention_mask": tiny_batch.attention_mask, "position_ids": tiny_batch.position_ids, "use_cache": False}

    def plain_tiny() -> object:
        with torch.inference_mode():
            return model.base_model(**tiny_inputs)

    def capture_tiny() -> object:
        return forward_with(model, tiny_batch, capture=sites)

    # exactness first: our residuals are the model's own hidden states
    ours = forward_with(model, small, capture=sites)
    hidden = full_forward().hidden_states  # type: ignore[attr-defined]
    same = all(torch.equal(ours[f"resid.{i}"], hidden[i + 1]) for i in range(n_layers - 1))
    print(f"exactness: resid.0..{n_layers - 2} equal output_hidden_states bit for bit: {same}")

    summary: dict[str, object] = {}
    for phase in ("default malloc", "freed memory kept"):
        if phase == "freed memory kept" and not keep_freed_memory():
            print("\nkeep_freed_memory() is not available here (not glibc): second phase skipped")
            break
        tag = "" if phase == "default malloc" else "_kept"
        for threads in [int(t) for t in args.threads.split(",")]:
            torch.set_num_threads(threads)
            print(f"\n{phase}, {threads} thread(s), load average {os.getloadavg()[0]:.2f}")
            summary_times = interleaved({"plain body (base_model)": plain_body, f"capture {n_layers} resid (our hooks)": capture_all}, args.reps)
            summary[f"overhead_{threads}t{tag}"] = report(f"same depth, {args.prompts} prompts", summary_times, "plain body (base_model)")
            summary[f"plain_ms_{threads}t{tag}"] = 1000 * statistics.median(summary_times["plain body (base_model)"])
            if not tag:
                times = interleaved({"plain body, 1×8 tokens": plain_tiny, "capture, 1×8 tokens": capture_tiny}, 41)
                fixed = statistics.median([c - p for c, p in zip(times["capture, 1×8 tokens"], times["plain body, 1×8 tokens"], strict=True)])
                big = statistics.median(summary_times["plain body (base_model)"])
                report("fixed cost of a capture", times, "plain body, 1×8 tokens")
                print(f"    fixed cost {fixed * 1000:.2f} ms per call = {100 * fixed / big:.3f}% of the {args.prompts}×{args.tokens} plain body ({big * 1000:.0f} ms)")
                summary[f"fixed_cost_ms_{threads}t"] = fixed * 1000
                times = interleaved({"full forward + hidden states": full_forward, f"capture {n_layers} resid, stop early": capture_small}, max(3, args.reps // 2))
                summary[f"stop_early_{threads}t"] = report(f"with vs without the output layer, {args.head_prompts} prompts", times, "full forward + hidden states")
            if args.nnsight:
                nnsight_figures(args, batch, threads, n_layers, capture_all, summary, tag)
    print(f"\nload average at end {os.getloadavg()[0]:.2f}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
