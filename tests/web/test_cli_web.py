"""`oversight users …` and `oversight web` from the command line."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from oversight.cli import app as cli
from oversight.store import Store
from oversight.web import WebSettings, create_app

runner = CliRunner()


def invoke(*args: str, stdin: str | None = None) -> dict[str, object]:
    result = runner.invoke(cli, list(args), input=stdin)
    assert result.exit_code == 0, result.output
    parsed: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return parsed


def test_users_commands_and_a_token_that_works(store: Store, db_url: str, tmp_path: Path) -> None:
    added = invoke("users", "add", "root", "--role", "admin", "--password-stdin", "--db", db_url, "--json", stdin="a long enough password\n")
    assert added["name"] == "root" and added["role"] == "admin"
    invoke("users", "add", "ana", "--role", "reviewer", "--password-stdin", "--db", db_url, "--json", stdin="another long password\n")
    listed = invoke("users", "list", "--db", db_url, "--json")
    assert [(u["name"], u["role"]) for u in listed["users"]] == [("ana", "reviewer"), ("root", "admin")]  # type: ignore[index]
    changed = invoke("users", "role", "ana", "viewer", "--db", db_url, "--json")
    assert changed["role"] == "viewer"
    token = invoke("users", "token", "ana", "--name", "nightly", "--db", db_url, "--json")
    secret = str(token["token"])
    assert secret.startswith("ovt_") and token["user"] == "ana"
    client = TestClient(create_app(store, WebSettings(runs_dir=tmp_path)))
    me = client.get("/api/me", headers={"Authorization": f"Bearer {secret}"}).json()
    assert me == {"name": "ana", "role": "viewer", "active": True, "created_at": me["created_at"]}

    duplicate = runner.invoke(cli, ["users", "add", "ana", "--password-stdin", "--db", db_url], input="yet another password\n")
    assert duplicate.exit_code == 2 and "already exists" in duplicate.output
    weak = runner.invoke(cli, ["users", "add", "eve", "--password-stdin", "--db", db_url], input="short\n")
    assert weak.exit_code == 2 and "at least" in weak.output
    bad_role = runner.invoke(cli, ["users", "add", "eve", "--role", "owner", "--password-stdin", "--db", db_url], input="a long enough password\n")
    assert bad_role.exit_code == 2 and "unknown role" in bad_role.output


def test_the_web_command_serves_the_app(tmp_path: Path) -> None:
    db = tmp_path / "web.db"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OVERSIGHT_DATA_DIR": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "oversight.cli", "web", "--db", str(db), "--port", str(port), "--runs-dir", str(tmp_path / "runs")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/login", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                assert time.monotonic() < deadline, "oversight web did not start"
                time.sleep(0.2)
        assert response.status_code == 200 and "Sign in" in response.text
        assert "script-src 'self'" in response.headers["content-security-policy"]
    finally:
        proc.terminate()
        output = proc.communicate(timeout=20)[0]
    assert "no users yet" in output and f"http://127.0.0.1:{port}/" in output
