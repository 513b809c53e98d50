"""Seed a demo store and save screenshots of the web app into docs/screenshots/.

The demo: PyRIT's refusal-scorer set (150 real prompt/response pairs with human refusal labels,
from ../shared/data, read by the project's own CSV importer), scored by the built-in
``refusal`` and ``rules`` monitors, with 40 of them labelled through the review queue (the
human label as the answer). Pages are rendered by the real app on loopback and captured by
headless Chromium (Debian's ``/usr/bin/chromium`` through Playwright).

    .venv/bin/python docs/screenshots/make_screenshots.py [--data ../shared/data] [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import csv
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from oversight.monitors.base import build_monitor
from oversight.monitors.pipeline import run_monitor
from oversight.store import Store, accounts, claims, import_file, open_store
from oversight.web import WebSettings, create_app, reviewing

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CSV = Path("pyrit_scorer_evals/refusal_scorer_eval.csv")
PASSWORD = "a demo password"


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def seed(store: Store, data: Path) -> None:
    source = data / CSV
    report = import_file(store, source, "prompt-response-csv", prompt_field="user_message", response_field="assistant_message", source="pyrit/refusal_scorer_eval.csv")
    print(f"imported {report.imported} transcripts from {source}")
    for name in ("refusal", "rules"):
        print(run_monitor(store, build_monitor(name)))
    with source.open(newline="", encoding="utf-8") as fh:
        # The same prompt appears with a refusal and with a compliance: key by both messages.
        gold = {(row["user_message"].strip(), row["assistant_message"].strip()): row["score_value"].strip().upper() == "TRUE" for row in csv.DictReader(fh)}
    accounts.add_user(store, "ada", PASSWORD, "admin")
    accounts.add_user(store, "grace", PASSWORD, "reviewer")
    ctx = create_app(store, WebSettings(batch_size=20)).state.ctx
    for k in range(40):
        reviewer = "ada" if k % 3 else "grace"
        entry = reviewing.claim(ctx, reviewer, "refusal", "active")
        assert entry is not None
        detail = store.get_transcripts([entry.transcript_id])[entry.transcript_id]
        pair = (next(m.content for m in detail.messages if m.role == "user").strip(), detail.messages[-1].content.strip())
        refused = gold[pair]
        note = "refuses, politely" if refused and k % 7 == 0 else None
        claims.submit_label(store, entry.id, reviewer, int(refused), note)


def evidence_example(store: Store) -> int:
    """A refused transcript whose refusal verdict points at its evidence."""
    from sqlalchemy import select

    from oversight.store import schema

    V = schema.Verdict
    with store.engine.connect() as conn:
        return int(conn.execute(
            select(V.transcript_id).where(V.monitor == "refusal", V.evidence_start.is_not(None)).order_by(V.score.desc(), V.transcript_id).limit(1)
        ).scalar_one())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{tmp}/demo.db")
        seed(store, args.data)
        app = create_app(store, WebSettings(runs_dir=Path(tmp) / "runs", batch_size=20))
        with serve(app) as base, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, headless=True)
            page = browser.new_page(viewport={"width": 1360, "height": 900}, device_scale_factor=1)
            page.goto(f"{base}/login")
            page.fill("input[name=name]", "ada")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(f"{base}/")
            page.wait_for_load_state("networkidle")
            shots = ["dashboard.png", "transcripts.png", "queue.png", "transcript.png"]
            page.screenshot(path=str(args.out / "dashboard.png"), full_page=True)
            page.goto(f"{base}/transcripts?monitor=refusal&score_min=0.5&sort=score")
            page.screenshot(path=str(args.out / "transcripts.png"))
            page.goto(f"{base}/queue?monitor=refusal")
            page.check("input[name=policy][value=active]")
            page.click("#start")
            page.wait_for_selector("#transcript-id")
            page.screenshot(path=str(args.out / "queue.png"))
            page.goto(f"{base}/transcripts/{evidence_example(store)}")
            page.screenshot(path=str(args.out / "transcript.png"), full_page=True)
            browser.close()
        store.close()
    for name in shots:
        print(f"wrote {args.out / name}")


if __name__ == "__main__":
    main()
