"""Shared by the web tests: a seeded store, signing in, a live server, the XSS set."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from oversight.monitors.base import build_monitor
from oversight.monitors.pipeline import run_monitor
from oversight.server.app import run_in_thread
from oversight.store import Store, import_file

PASSWORD = "correct horse battery staple"
_REFUSALS = [
    "I'm sorry, but I can't help with that request.",
    "I cannot assist with that. It could cause harm.",
    "As an AI, I won't provide instructions for this.",
]
_ANSWERS = [
    "Sure! The capital of France is Paris.",
    "Here is a short poem about the sea, as you asked.",
    "The derivative of x squared is two x.",
    "Photosynthesis turns light into chemical energy.",
]


def write_chats(path: Path, n: int, seed: int = 0) -> Path:
    """``n`` OpenAI-style conversations, about a third of them refusals."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            reply = rng.choice(_REFUSALS) if rng.random() < 0.35 else rng.choice(_ANSWERS)
            record = {
                "messages": [
                    {"role": "user", "content": f"Question {i}: please help me with item {i} ({rng.choice(['poem', 'math', 'travel', 'chemistry'])})."},
                    {"role": "assistant", "content": f"{reply} (reply {i})"},
                ],
                "model": rng.choice(["model-a", "model-b"]),
                "task": rng.choice(["chat", "safety"]),
            }
            fh.write(json.dumps(record) + "\n")
    return path


def seed_store(store: Store, tmp_path: Path, n: int = 120) -> None:
    """Import through the real importer and score with the real refusal monitor."""
    report = import_file(store, write_chats(tmp_path / "chats.jsonl", n))
    assert report.imported == n
    run_monitor(store, build_monitor("refusal"))


# -- the XSS set: each payload would set window.__xss (or open a dialog) if it ever ran ----------
XSS_PAYLOADS = [
    "<script>window.__xss = 'script'; alert('script')</script>",
    "<img src=x onerror=\"window.__xss='img'; alert('img')\">",
    "<a href=\"javascript:window.__xss='link'\">click me</a>",
    "<svg onload=\"window.__xss='svg'\"><circle r=5></circle></svg>",
    "\"><script>window.__xss='attr-breakout'</script>",
    "'><img src=x onerror=window.__xss='single-quote'>",
    "</textarea><script>window.__xss='textarea'</script>",
    "</title><script>window.__xss='title'</script>",
    "<iframe srcdoc=\"<script>parent.__xss='iframe'</script>\"></iframe>",
    "<details open ontoggle=\"window.__xss='details'\">x</details>",
    "<body onload=\"window.__xss='body'\">",
    "<style>body { display: none }</style><b>bold?</b>",
    "<meta http-equiv=\"refresh\" content=\"0;url=javascript:window.__xss='meta'\">",
    "[markdown link](javascript:window.__xss='md-link') and ![img](x \"onerror=window.__xss='md-img'\")",
    "**bold** _em_ <https://example.com> `code` # heading",
    "{{ 7 * 7 }} {% raw %}jinja{% endraw %} ${7*7}",
    "<math><mtext><table><mglyph><style><img src=x onerror=window.__xss='mxss'>",
    "&lt;script&gt;window.__xss='entity'&lt;/script&gt; &#60;b&#62;",
]


def write_xss_chats(path: Path) -> Path:
    """Conversations whose every field carries a payload (messages, model, task, metadata)."""
    with path.open("w", encoding="utf-8") as fh:
        for i, payload in enumerate(XSS_PAYLOADS):
            fh.write(json.dumps({
                "messages": [
                    {"role": "user", "content": f"XSS probe {i}: {payload}"},
                    {"role": "assistant", "content": f"I'm sorry, I can't do that. {payload}"},
                ],
                "model": f"m<b>{i}</b>" if i % 2 else "<script>window.__xss='model'</script>",
                "task": "<img src=x onerror=window.__xss='task'>",
                "metadata": {"note": payload, "<key onmouseover=x>": 1},
            }) + "\n")
    return path


# -- signing in -----------------------------------------------------------------------------------
def csrf_from(html: str) -> str:
    m = re.search(r'name="csrf-token" content="([^"]+)"', html) or re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF token on the page"
    return m.group(1)


def sign_in(client: TestClient, name: str, password: str = PASSWORD) -> str:
    """Sign in through the real form; returns the session's CSRF token."""
    page = client.get("/login")
    response = client.post("/login", data={"name": name, "password": password, "csrf_token": csrf_from(page.text), "next": "/"}, follow_redirects=False)
    assert response.status_code == 303, response.text
    return csrf_from(client.get("/").text)


# -- a live server on loopback ----------------------------------------------------------------------
@contextmanager
def live_server(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn from a thread on a free loopback port; yields its base URL."""
    with run_in_thread(app) as url:
        yield url


def json_of(response: Any) -> Any:
    assert response.status_code < 400, f"{response.status_code}: {response.text}"
    return response.json()
