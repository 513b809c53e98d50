"""The web app over HTTP (FastAPI's TestClient): sign-in, roles, CSRF, the JSON API, paging,
search and runs, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select
from web_helpers import PASSWORD, csrf_from, json_of, sign_in

from oversight.evals.records import (
    MetricResult,
    ModelRecord,
    RunConfig,
    RunResults,
    SampleRecord,
    TaskRecord,
    TaskResult,
)
from oversight.review.service import gather_estimate
from oversight.store import Store, accounts, schema
from oversight.web import WebSettings, create_app
from oversight.web.security import REPORT_POLICY, SESSION_COOKIE


def client(app: FastAPI) -> TestClient:
    return TestClient(app, base_url="http://testserver")


def bearer(store: Store, user: str) -> dict[str, str]:
    secret, _ = accounts.create_token(store, user, "test")
    return {"Authorization": f"Bearer {secret}"}


# -- signing in ----------------------------------------------------------------------------------


def test_pages_redirect_to_sign_in_and_the_api_answers_401(app: FastAPI) -> None:
    c = client(app)
    page = c.get("/transcripts?model=model-a", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/login?next=/transcripts%3Fmodel%3Dmodel-a"
    api = c.get("/api/dashboard")
    assert api.status_code == 401 and api.headers["www-authenticate"] == "Bearer"
    assert "detail" in api.json()


def test_sign_in_sets_a_hardened_cookie_and_audits(app: FastAPI, seeded: Store) -> None:
    c = client(app)
    login = c.get("/login")
    wrong = c.post("/login", data={"name": "ana", "password": "not the password", "csrf_token": csrf_from(login.text)})
    assert wrong.status_code == 401 and "wrong name or password" in wrong.text
    login = c.get("/login")
    ok = c.post("/login", data={"name": "ana", "password": PASSWORD, "csrf_token": csrf_from(login.text), "next": "//evil.example/x"}, follow_redirects=False)
    assert ok.status_code == 303 and ok.headers["location"] == "/"  # no open redirect
    for target in ("https://evil.example/", "/\t/evil.example", "/\\evil.example"):
        again = client(app)
        form = again.get("/login")
        moved = again.post("/login", data={"name": "ana", "password": PASSWORD, "csrf_token": csrf_from(form.text), "next": target}, follow_redirects=False)
        assert moved.headers["location"] == "/", target
    cookie = ok.headers["set-cookie"].lower()
    assert f"{SESSION_COOKIE}=" in cookie and "httponly" in cookie and "samesite=lax" in cookie
    actions = [e.action for e in accounts.audit_events(seeded)]
    assert "login.failed" in actions and "login" in actions
    me = json_of(c.get("/api/me"))
    assert me["name"] == "ana" and me["role"] == "reviewer"
    # The cookie's value is not what the database keeps.
    token = c.cookies[SESSION_COOKIE]
    with seeded.engine.connect() as conn:
        stored = conn.execute(select(schema.WebSession.token_hash)).scalars().all()
    assert token not in stored and accounts.digest(token) in stored


def test_the_sign_in_form_needs_its_own_csrf_token(app: FastAPI) -> None:
    c = client(app)
    c.get("/login")
    response = c.post("/login", data={"name": "ana", "password": PASSWORD, "csrf_token": "forged"})
    assert response.status_code == 403
    assert json_of(client(app).get("/api/openapi.json"))  # the schema stays public


def test_sessions_expire_when_idle(seeded: Store, tmp_path: Path) -> None:
    app = create_app(seeded, WebSettings(runs_dir=tmp_path, idle_timeout=timedelta(0)))
    c = client(app)
    login = c.get("/login")
    c.post("/login", data={"name": "ana", "password": PASSWORD, "csrf_token": csrf_from(login.text)}, follow_redirects=False)
    assert c.get("/", follow_redirects=False).status_code == 303
    assert c.get("/api/me").status_code == 401


def test_sign_out_ends_the_session(app: FastAPI) -> None:
    c = client(app)
    csrf = sign_in(c, "ana")
    assert c.post("/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    assert c.get("/api/me").status_code == 401


# -- CSRF and headers ------------------------------------------------------------------------


def _fill(path: str) -> str:
    return path.replace("{item_id}", "1").replace("{transcript_id}", "1").replace("{token_id}", "1").replace("{name}", "ana").replace("{monitor}", "refusal")


def _api_routes(routes: list[object]) -> list[APIRoute]:
    """Every route of the app, through included routers (newer FastAPI wraps them)."""
    out: list[APIRoute] = []
    for r in routes:
        if isinstance(r, APIRoute):
            out.append(r)
        inner = getattr(r, "original_router", None)
        if inner is not None:
            out += _api_routes(inner.routes)
    return out


def test_every_state_changing_route_refuses_a_session_request_without_the_csrf_token(app: FastAPI) -> None:
    c = client(app)
    csrf = sign_in(c, "root")
    routes = [(m, r.path) for r in _api_routes(list(app.routes)) for m in r.methods if m not in ("GET", "HEAD") and r.path != "/login"]
    assert len(routes) >= 14
    for method, path in routes:
        url = _fill(path)
        refused = c.request(method, url, data={"label": "1", "monitor": "refusal", "policy": "random"}, follow_redirects=False)
        assert refused.status_code == 403 and "CSRF" in refused.text, (method, path, refused.status_code)
        forged = c.request(method, url, headers={"X-CSRF-Token": "x" + csrf}, follow_redirects=False)
        assert forged.status_code == 403 and "CSRF" in forged.text, (method, path)
        if path != "/logout":  # (signing out would end the session the loop runs in)
            passed = c.request(method, url, headers={"X-CSRF-Token": csrf}, json={}, follow_redirects=False)
            assert passed.status_code != 403 or "CSRF" not in passed.text, (method, path)
    assert c.get("/api/me").status_code == 200  # still signed in: every refused request did nothing


def test_security_headers_on_pages_and_api(app: FastAPI) -> None:
    c = client(app)
    sign_in(c, "vic")
    for path in ("/", "/transcripts", "/api/dashboard", "/login"):
        headers = c.get(path).headers
        policy = headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "default-src 'none'" in policy
        assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"


# -- roles --------------------------------------------------------------------------------------


def test_a_viewer_reads_but_cannot_label(app: FastAPI) -> None:
    c = client(app)
    csrf = sign_in(c, "vic")
    assert c.get("/").status_code == 200
    assert c.get("/api/transcripts").status_code == 200
    h = {"X-CSRF-Token": csrf}
    assert c.post("/api/queue/claim", json={"monitor": "refusal", "policy": "random"}, headers=h).status_code == 403
    assert c.post("/queue/next", data={"monitor": "refusal", "policy": "random", "csrf_token": csrf}).status_code == 403
    assert c.post("/api/queue/items/1/label", json={"label": 1}, headers=h).status_code == 403
    assert c.get("/queue").status_code == 403
    assert c.get("/api/users").status_code == 403


def test_admins_change_roles_and_the_change_is_audited(app: FastAPI, seeded: Store) -> None:
    c = client(app)
    csrf = sign_in(c, "root")
    assert c.post("/admin/users/ana/role", data={"role": "viewer", "csrf_token": csrf}, follow_redirects=False).status_code == 303
    assert accounts.get_user(seeded, "ana").role == "viewer"  # type: ignore[union-attr]
    event = accounts.audit_events(seeded, action="user.role")[0]
    assert (event.actor, event.target, event.details) == ("root", "ana", {"old": "reviewer", "new": "viewer"})
    demoted = client(app)
    sign_in(demoted, "ana")
    assert demoted.get("/api/users").status_code == 403
    assert c.put("/api/users/root/role", json={"role": "viewer"}, headers={"X-CSRF-Token": csrf}).status_code == 400  # last admin


# -- the queue over the API ------------------------------------------------------------------------


def test_label_through_the_api_with_a_token(app: FastAPI, seeded: Store) -> None:
    c = client(app)
    h = bearer(seeded, "ana")
    before = json_of(c.get("/api/monitors/refusal/estimate", headers=h))
    assert before["n_labelled"] == 0 and before["estimate"] is None and "no labels" in before["estimate_error"]
    results = []
    for k in range(20):  # two batches of 10 (settings.batch_size) under the random policy
        item = json_of(c.post("/api/queue/claim", json={"monitor": "refusal", "policy": "random"}, headers=h))["item"]
        assert item["item"]["lock_owner"] == "ana" and 0 < item["item"]["inclusion_probability"] <= 1
        assert item["transcript"]["messages"][0]["role"] == "user"
        result = json_of(c.post(f"/api/queue/items/{item['item']['id']}/label", json={"label": k % 3 == 0, "note": f"note {k}"}, headers=h))
        assert result["label"]["reviewer"] == "ana" and result["label"]["inclusion_probability"] == item["item"]["inclusion_probability"]
        results.append(result)
    # A batch enters the estimate once it is fully labelled (review.estimates): none before
    # the tenth label, the first batch after it, both after the twentieth.
    assert all(r["estimate"] is None and "not labelled yet" in r["monitor"]["estimate_error"] for r in results[:9])
    first, second = results[9]["estimate"], results[19]["estimate"]
    assert first is not None and second is not None and first != second
    assert [b["used"] for b in results[19]["monitor"]["batches"]] == [True, True]
    canonical = gather_estimate(seeded, "refusal")  # the CLI's estimate agrees with the app's cache
    assert second["rate"] == pytest.approx(canonical.rate) and second["ci_high"] == pytest.approx(canonical.ci_high)
    assert second["n_total"] == 120
    with seeded.engine.connect() as conn:
        labels = conn.execute(select(schema.Label)).mappings().all()
    assert len(labels) == 20 and all(r["reviewer"] == "ana" and r["inclusion_probability"] is not None and r["queue_batch"] for r in labels)
    assert len([e for e in accounts.audit_events(seeded, action="label") if e.actor == "ana"]) == 20


def test_tokens_can_be_revoked_and_bad_tokens_never_fall_back_to_the_cookie(app: FastAPI, seeded: Store) -> None:
    c = client(app)
    sign_in(c, "ana")
    secret, info = accounts.create_token(seeded, "ana", "script")
    assert json_of(c.get("/api/me", headers={"Authorization": f"Bearer {secret}"}))["name"] == "ana"
    assert c.get("/api/me", headers={"Authorization": "Bearer ovt_wrong"}).status_code == 401
    accounts.revoke_token(seeded, info.id)
    assert c.get("/api/me", headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    with seeded.engine.connect() as conn:
        assert secret not in conn.execute(select(schema.ApiToken.token_hash)).scalars().all()


def test_a_locked_item_cannot_be_labelled_by_someone_else(app: FastAPI, seeded: Store) -> None:
    c = client(app)
    ana, ben = bearer(seeded, "ana"), bearer(seeded, "ben")
    item = json_of(c.post("/api/queue/claim", json={"monitor": "refusal", "policy": "random"}, headers=ana))["item"]["item"]
    refused = c.post(f"/api/queue/items/{item['id']}/label", json={"label": 1}, headers=ben)
    assert refused.status_code == 409 and refused.json()["reason"] == "locked"
    other = json_of(c.post("/api/queue/claim", json={"monitor": "refusal", "policy": "random"}, headers=ben))["item"]["item"]
    assert other["transcript_id"] != item["transcript_id"]
    json_of(c.post(f"/api/queue/items/{item['id']}/label", json={"label": 1}, headers=ana))
    again = c.post(f"/api/queue/items/{item['id']}/label", json={"label": 0}, headers=ana)
    assert again.status_code == 409 and again.json()["reason"] == "already_labelled"


def test_skipped_items_go_to_someone_else(app: FastAPI, seeded: Store) -> None:
    c = client(app)
    ana, ben = bearer(seeded, "ana"), bearer(seeded, "ben")
    first = json_of(c.post("/api/queue/claim", json={"monitor": "refusal", "policy": "random"}, headers=ana))["item"]["item"]
    assert c.post(f"/api/queue/items/{first['id']}/skip", headers=ana).status_code == 204
    nxt = json_of(c.post("/api/queue/claim", json={"monitor": "refusal", "policy": "random"}, headers=ana))["item"]["item"]
    assert nxt["id"] != first["id"]
    theirs = json_of(c.post("/api/queue/claim", json={"monitor": "refusal", "policy": "random"}, headers=ben))["item"]["item"]
    assert theirs["id"] == first["id"]


def test_the_policies_list_marks_what_the_web_app_cannot_run(app: FastAPI, seeded: Store) -> None:
    c = client(app)
    policies = {p["name"]: p for p in json_of(c.get("/api/queue/policies", headers=bearer(seeded, "vic")))}
    assert policies["diverse"]["available"] is False and policies["active"]["available"] is True
    bad = c.post("/api/queue/claim", json={"monitor": "refusal", "policy": "diverse"}, headers=bearer(seeded, "ana"))
    assert bad.status_code == 400 and "embeddings" in bad.json()["detail"]


# -- transcripts: filters, search, paging -----------------------------------------------------------


def _all_pages(c: TestClient, h: dict[str, str], params: dict[str, object]) -> list[dict[str, object]]:
    items: list[dict[str, object]] = []
    cursor = None
    while True:
        page = json_of(c.get("/api/transcripts", params={**params, "limit": 7, **({"cursor": cursor} if cursor else {})}, headers=h))
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def test_keyset_pages_cover_the_filtered_list_exactly_once(app: FastAPI, seeded: Store) -> None:
    c = client(app)
    h = bearer(seeded, "vic")
    with seeded.engine.connect() as conn:
        rows = conn.execute(
            select(schema.Transcript.id, schema.Transcript.model, schema.Verdict.score, schema.Verdict.id)
            .join(schema.Verdict, schema.Verdict.transcript_id == schema.Transcript.id)
        ).all()
    newest = _all_pages(c, h, {"model": "model-a"})
    assert [t["id"] for t in newest] == sorted((r[0] for r in rows if r[1] == "model-a"), reverse=True)
    by_score = _all_pages(c, h, {"monitor": "refusal", "score_min": 0.2, "sort": "score"})
    expected = [r[0] for r in sorted((r for r in rows if r[2] is not None and r[2] >= 0.2), key=lambda r: (r[2], r[3]), reverse=True)]
    assert [t["id"] for t in by_score] == expected and len(expected) > 7
    assert all(t["scores"]["refusal"] >= 0.2 for t in by_score)


def test_full_text_search_stems_excludes_and_combines_with_filters(app: FastAPI, seeded: Store) -> None:
    c = client(app)
    h = bearer(seeded, "vic")
    with seeded.engine.connect() as conn:
        messages = dict(conn.execute(select(schema.Transcript.id, schema.Transcript.messages)).all())
    text = {i: " ".join(m["content"] for m in ms).lower() for i, ms in messages.items()}
    found = {t["id"] for t in _all_pages(c, h, {"q": "capitals"})}  # stemmed: matches "capital"
    assert found == {i for i, t in text.items() if "capital" in t} and found
    phrase = {t["id"] for t in _all_pages(c, h, {"q": '"short poem" -sea'})}
    assert phrase == set()  # every short poem is about the sea
    combined = {t["id"] for t in _all_pages(c, h, {"q": "sorry", "model": "model-b", "label": "unlabelled"})}
    assert combined and all("sorry" in text[i] for i in combined)
    assert c.get("/api/transcripts", params={"q": "-only"}, headers=h).status_code == 400
    assert c.get("/api/transcripts", params={"cursor": "garbage"}, headers=h).status_code == 400
    assert c.get("/api/transcripts", params={"score_min": 0.5}, headers=h).status_code == 400  # needs a monitor


def test_label_filters_follow_the_latest_label(app: FastAPI, seeded: Store) -> None:
    c = client(app)
    h = bearer(seeded, "ana")
    item = json_of(c.post("/api/queue/claim", json={"monitor": "refusal", "policy": "random"}, headers=h))["item"]["item"]
    json_of(c.post(f"/api/queue/items/{item['id']}/label", json={"label": 1}, headers=h))
    tid = item["transcript_id"]
    assert [t["id"] for t in _all_pages(c, h, {"label": "fault"})] == [tid]
    json_of(c.post(f"/api/transcripts/{tid}/labels", json={"label": 0, "note": "second look"}, headers=h))
    assert _all_pages(c, h, {"label": "fault"}) == []
    assert [t["id"] for t in _all_pages(c, h, {"label": "fine"})] == [tid]
    detail = json_of(c.get(f"/api/transcripts/{tid}", headers=h))
    assert [lab["label"] for lab in detail["labels"]] == [1, 0]
    assert detail["labels"][1]["inclusion_probability"] == detail["labels"][0]["inclusion_probability"]  # π carried
    never = next(t["id"] for t in _all_pages(c, h, {"label": "unlabelled"}))
    assert c.post(f"/api/transcripts/{never}/labels", json={"label": 1}, headers=h).status_code == 400


# -- eval runs ----------------------------------------------------------------------------------


def _write_run(path: Path, model: str, correct: list[int]) -> None:
    path.mkdir(parents=True)
    task = TaskRecord(name="capitals", kind="multiple_choice", hash="h1", n_samples=len(correct), metrics={"acc": True})
    config = RunConfig(model=ModelRecord(spec=model, backend="hf", fingerprint=model), tasks=[task], seed=0, oversight_version="test", created=f"2025-01-0{len(model) % 9 + 1}")
    (path / "config.json").write_text(config.model_dump_json())
    with (path / "samples.jsonl").open("w") as fh:
        for i, y in enumerate(correct):
            fh.write(SampleRecord(task="capitals", doc_id=i, prompt=f"<b>Q{i}</b>", choices=["a", "b"], target=0, loglikelihoods=[-1.0, -2.0 if y else -0.5], prediction=0 if y else 1, scores={"acc": float(y)}).model_dump_json() + "\n")
    acc = sum(correct) / len(correct)
    results = RunResults(model=config.model, tasks={"capitals": TaskResult(n_samples=len(correct), metrics={"acc": MetricResult(value=acc, stderr=0.1, ci_low=max(acc - 0.2, 0), ci_high=min(acc + 0.2, 1), n=len(correct), method="wilson")})})
    (path / "results.json").write_text(results.model_dump_json())


def test_runs_list_compare_and_sandboxed_report(app: FastAPI, seeded: Store, settings: WebSettings) -> None:
    _write_run(settings.runs_dir / "small", "tiny-small", [1, 0, 0, 1, 0, 0, 1, 0])
    _write_run(settings.runs_dir / "large", "tiny-large", [1, 1, 1, 1, 0, 1, 1, 1])
    (settings.runs_dir / "not-a-run").mkdir()
    c = client(app)
    h = bearer(seeded, "vic")
    runs = {r["name"]: r for r in json_of(c.get("/api/runs", headers=h))}
    assert set(runs) == {"small", "large"} and runs["large"]["metrics"][0]["value"] == pytest.approx(0.875)
    rows = json_of(c.get("/api/runs/compare", params={"a": "small", "b": "large"}, headers=h))
    assert rows[0]["task"] == "capitals" and rows[0]["diff"] == pytest.approx(0.5) and rows[0]["n"] == 8
    sign_in(c, "vic")
    report = c.get("/runs/report", params={"run": ["small", "large"]})
    assert report.status_code == 200 and report.headers["content-security-policy"] == REPORT_POLICY
    assert "<b>Q" not in report.text  # the report escapes model output too
    assert c.get("/runs/compare", params={"a": "small", "b": "large"}).status_code == 200
    for bad in ("..", "../runs", "small/../large", "not-a-run"):
        assert c.get("/runs/report", params={"run": bad}).status_code == 400


# -- the schema ---------------------------------------------------------------------------------


def test_openapi_describes_the_api(app: FastAPI) -> None:
    schema_doc = json_of(client(app).get("/api/openapi.json"))
    paths = schema_doc["paths"]
    for path in ("/api/queue/claim", "/api/queue/items/{item_id}/label", "/api/monitors/{monitor}/estimate", "/api/transcripts", "/api/dashboard"):
        assert path in paths
    assert not any(p.startswith("/queue") or p == "/" for p in paths)  # pages are not API
    assert "LabelIn" in json.dumps(schema_doc["components"])


def test_the_dashboard_follows_new_transcripts_and_verdicts(app: FastAPI, seeded: Store, tmp_path: Path) -> None:
    """Aggregates are kept by increments; after an import and a monitor run they equal a fresh count."""
    from web_helpers import write_chats

    from oversight.monitors.base import build_monitor
    from oversight.monitors.pipeline import run_monitor
    from oversight.store import import_file

    c = client(app)
    h = bearer(seeded, "vic")
    before = json_of(c.get("/api/dashboard", headers=h))
    assert before["transcripts"] == 120 and before["monitors"][0]["n_scored"] == 120
    import_file(seeded, write_chats(tmp_path / "more.jsonl", 200, seed=7))  # some repeat: duplicates
    run_monitor(seeded, build_monitor("refusal"))
    after = json_of(c.get("/api/dashboard", headers=h))
    fresh = json_of(client(create_app(seeded, WebSettings(runs_dir=tmp_path))).get("/api/dashboard", headers=h))
    assert after["transcripts"] == fresh["transcripts"] > 120
    (kept,), (counted,) = after["monitors"], fresh["monitors"]
    assert kept.pop("mean_score") == pytest.approx(counted.pop("mean_score"))  # sums in another order
    assert kept == counted and kept["n_scored"] == fresh["transcripts"]
