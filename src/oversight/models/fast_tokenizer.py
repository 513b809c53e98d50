"""Load a local model's tokenizer in a fraction of ``AutoTokenizer``'s time after the first load.

transformers 5 rebuilds some fast tokenizers (Gemma's among them) on every load: it parses
``tokenizer.json`` in Python and builds the BPE model again from the vocabulary and its
half a million merges, about 5 s for Gemma 3. The tokenizer it builds is the authority,
so the first load still goes through ``AutoTokenizer``; its Rust backend and the settings
that shape encoding and decoding are then saved in the user's cache, and later loads read
that file straight into Rust (about 2 s). A saved tokenizer is used only after it encoded
and decoded a set of probe strings exactly as the original did, and it is keyed by the
tokenizer files (path, size, modification time) and the library versions, so a changed
file or upgrade loads the original again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import tempfile
from importlib.metadata import version
from pathlib import Path
from typing import Any

from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from oversight.paths import cache_dir

#: Files a tokenizer directory may load from; any change to them invalidates the saved copy.
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
    "tokenizer.model", "vocab.json", "merges.txt", "chat_template.jinja", "chat_template.json",
)
SPECIAL = ("bos_token", "eos_token", "unk_token", "pad_token", "mask_token", "sep_token", "cls_token")
SETTINGS = ("model_max_length", "padding_side", "truncation_side", "clean_up_tokenization_spaces", "chat_template")
PROBES = (
    "",
    "The capital of France is Paris.",
    "Question: Is the sky blue?\nAnswer: (A) Yes\n (B) No",
    "  two leading spaces, a trailing one ",
    "\t\ttabs\n\nand newlines\r\n",
    "ünïcödé 日本語 한국어 русский 🙂 ∑ x²",
    "<bos><eos><pad><unk> <s></s> <|endoftext|> <start_of_turn>user\nhi<end_of_turn>",
    "1234567890 3.14159 -42 0x1F",
    "def f(x):\n    return {'a': [1, 2]}  # code",
)


def load_tokenizer(path: Path) -> PreTrainedTokenizerBase:
    """``AutoTokenizer.from_pretrained(path)`` for a local directory, saved for fast reloads."""
    saved = cache_dir() / "tokenizers" / _stamp(path)
    if (saved / "settings.json").exists():
        try:
            return _load_saved(saved)
        except Exception:  # tokenizers raises a bare Exception on a malformed file
            shutil.rmtree(saved, ignore_errors=True)  # unreadable: rebuilt below
    tokenizer = AutoTokenizer.from_pretrained(path)
    _save(tokenizer, saved)
    return tokenizer


def _stamp(path: Path) -> str:
    files = [path / name for name in TOKENIZER_FILES if (path / name).is_file()]
    key = {
        "dir": str(path.resolve()),
        "files": [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files],
        "versions": [version("transformers"), version("tokenizers")],
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]


def _settings(tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
    out: dict[str, Any] = {name: str(getattr(tokenizer, name)) for name in SPECIAL if getattr(tokenizer, name, None)}
    for name in SETTINGS:
        value = getattr(tokenizer, name, None)
        if value is not None:
            out[name] = value
    return out


def _load_saved(saved: Path) -> PreTrainedTokenizerFast:
    settings = json.loads((saved / "settings.json").read_text(encoding="utf-8"))
    return PreTrainedTokenizerFast(tokenizer_file=str(saved / "tokenizer.json"), **settings)


def _save(tokenizer: PreTrainedTokenizerBase, saved: Path) -> None:
    """Save the backend of ``tokenizer`` if a tokenizer rebuilt from it behaves identically."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or not hasattr(backend, "to_str"):
        return  # a slow (Python) tokenizer: nothing to save
    saved.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".saving-", dir=saved.parent))
    try:
        (staging / "tokenizer.json").write_text(backend.to_str(), encoding="utf-8")
        settings = _settings(tokenizer)
        (staging / "settings.json").write_text(json.dumps(settings), encoding="utf-8")
        if not _same_behaviour(tokenizer, _load_saved(staging)):
            return
        with contextlib.suppress(OSError):  # another process saved it first: as good as ours
            staging.rename(saved)
    except (OSError, ValueError, TypeError):
        return  # saving is an optimisation; the caller has its tokenizer either way
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _same_behaviour(a: PreTrainedTokenizerBase, b: PreTrainedTokenizerBase) -> bool:
    if (a.all_special_ids, len(a), a.chat_template) != (b.all_special_ids, len(b), b.chat_template):
        return False
    for text in PROBES:
        for special in (True, False):
            ids = a.encode(text, add_special_tokens=special)
            if ids != b.encode(text, add_special_tokens=special):
                return False
            for skip in (True, False):
                if a.decode(ids, skip_special_tokens=skip) != b.decode(ids, skip_special_tokens=skip):
                    return False
    return True
