"""The web app's settings: one frozen value handed to :func:`oversight.web.create_app`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path


@dataclass(frozen=True)
class WebSettings:
    #: Where ``oversight eval`` wrote its run directories (the Runs page lists its children).
    runs_dir: Path = Path("runs")
    #: A session ends this long after sign-in, however active.
    session_lifetime: timedelta = timedelta(hours=12)
    #: …or after this long without a request.
    idle_timeout: timedelta = timedelta(hours=2)
    #: How long a claimed queue item stays with its reviewer (Langfuse uses 5 minutes).
    lock_for: timedelta = timedelta(minutes=10)
    #: Items per batch the queue draws when a queue runs dry (expected size for Poisson designs).
    batch_size: int = 20
    #: Send cookies only over HTTPS; set when the app is served behind TLS.
    secure_cookies: bool = False
    #: Rebuild the incrementally maintained aggregates from scratch this often (deletions are
    #: the one change an increment cannot see).
    rebuild_every: timedelta = timedelta(minutes=10)
    #: Above this many scored transcripts a monitor's estimate is recomputed in the background
    #: after labels change (pages show the previous one, marked as updating, meanwhile).
    estimate_sync_limit: int = 100_000
