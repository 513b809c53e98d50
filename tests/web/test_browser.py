"""The web app in real headless Chromium (Debian's, through Playwright), served by uvicorn on
loopback, on SQLite and PostgreSQL: sign in, label by keyboard, two reviewers at once, a viewer,
and a set of XSS payloads that must stay text."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from web_helpers import PASSWORD, XSS_PAYLOADS, live_server, write_xss_chats

from oversight.monitors.base import build_monitor
from oversight.monitors.pipeline import run_monitor
from oversight.store import Store, accounts, import_file, schema
from oversight.web import WebSettings, create_app

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium)")

if Path(CHROMIUM).exists():
    from playwright.sync_api import Browser, Page, sync_playwright
else:  # pragma: no cover - the module is skipped
    Browser = Page = Any


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


@pytest.fixture()
def base_url(seeded: Store, tmp_path: Path) -> Iterator[str]:
    app = create_app(seeded, WebSettings(runs_dir=tmp_path / "runs", batch_size=5))
    with live_server(app) as url:
        yield url


class Watch:
    """Console errors (a blocked inline script or style would show here) and dialogs of a page."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("dialog", self._dialog)

    def _console(self, message: Any) -> None:
        # A failed sign-in answers 401, which Chromium logs as a failed load: not a page error.
        if message.type == "error" and "status of 401" not in message.text:
            self.errors.append(message.text)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()


def open_page(browser: Browser) -> tuple[Page, Watch]:
    context = browser.new_context()
    context.set_default_timeout(15_000)
    page = context.new_page()
    return page, Watch(page)


def sign_in(page: Page, base_url: str, name: str, password: str = PASSWORD) -> None:
    page.goto(f"{base_url}/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/$"))


def start_queue(page: Page, base_url: str, policy: str) -> None:
    page.goto(f"{base_url}/queue")
    page.check(f"input[name=policy][value={policy}]")
    page.locator("body").click(position={"x": 5, "y": 5})  # focus off the form, then the key
    with page.expect_navigation():
        page.keyboard.press("n")
    page.wait_for_selector("#transcript-id")


def shown_transcript(page: Page) -> int:
    return int(page.get_attribute("#transcript-id", "data-transcript") or 0)


def estimate_text(page: Page) -> str:
    return " ".join(page.inner_text("#estimate-panel [data-estimate]").split())


def press_and_wait(page: Page, key: str) -> None:
    before = page.url
    page.keyboard.press(key)
    page.wait_for_url(lambda url: url != before)
    page.wait_for_selector("#transcript-id")


# -- the tests ------------------------------------------------------------------------------------


def test_sign_in_shows_the_dashboard_with_no_policy_violations(browser: Browser, base_url: str) -> None:
    page, watch = open_page(browser)
    page.goto(f"{base_url}/")
    assert "/login" in page.url
    page.fill("input[name=name]", "ana")
    page.fill("input[name=password]", "wrong password!")
    page.click("button[type=submit]")
    assert "wrong name or password" in page.inner_text("[role=alert]")
    sign_in(page, base_url, "ana")
    assert page.inner_text("[data-monitor=refusal] h2") == "refusal"
    assert page.is_visible("img[data-calibration]")
    for path in ("/transcripts", "/transcripts/1", "/queue", "/runs", "/api", "/account"):
        page.goto(base_url + path)
    assert watch.errors == [] and watch.dialogs == []  # no inline script or style was needed or blocked
    page.context.close()


def test_label_ten_items_by_keyboard_and_watch_the_estimate_change(browser: Browser, base_url: str, seeded: Store) -> None:
    page, watch = open_page(browser)
    sign_in(page, base_url, "ana")
    start_queue(page, base_url, "random")
    estimates = [estimate_text(page)]
    seen = []
    for k in range(10):
        seen.append(shown_transcript(page))
        if k == 3:  # a note, typed by keyboard too
            page.keyboard.press("c")
            page.keyboard.type("looks like a <b>refusal</b>")
            page.keyboard.press("Escape")
        press_and_wait(page, "f" if k % 3 == 0 else "j")
        estimates.append(estimate_text(page))
    assert len(set(seen)) == 10
    # Batches of 5 enter the estimate when complete: none before, one after 5 labels, two after 10.
    assert all("no estimate yet" in e for e in estimates[:5])
    assert "no estimate yet" not in estimates[5] and estimates[5] == estimates[9]
    assert estimates[10] != estimates[5] and "10 labelled of 120" in estimates[10]
    with seeded.engine.connect() as conn:
        rows = conn.execute(select(schema.Label).order_by(schema.Label.id)).mappings().all()
    assert [r["transcript_id"] for r in rows] == seen
    assert all(r["reviewer"] == "ana" and r["inclusion_probability"] and r["created_at"] for r in rows)
    assert rows[3]["note"] == "looks like a <b>refusal</b>" and [r["label"] for r in rows] == [1 if k % 3 == 0 else 0 for k in range(10)]
    page.goto(f"{base_url}/")
    assert "10 labelled of 120" in " ".join(page.inner_text("[data-monitor=refusal] [data-estimate]").split())
    assert watch.errors == []
    page.context.close()


def test_two_reviewers_labelling_at_once_never_get_the_same_item(browser: Browser, base_url: str, seeded: Store) -> None:
    ana, _ = open_page(browser)
    ben, _ = open_page(browser)
    sign_in(ana, base_url, "ana")
    sign_in(ben, base_url, "ben")
    start_queue(ana, base_url, "random")
    start_queue(ben, base_url, "random")
    for _ in range(8):
        a, b = shown_transcript(ana), shown_transcript(ben)
        assert a != b
        a_url, b_url = ana.url, ben.url
        ana.keyboard.press("f")  # both requests in flight together: no wait in between
        ben.keyboard.press("j")
        ana.wait_for_url(lambda url, u=a_url: url != u)  # type: ignore[misc]
        ben.wait_for_url(lambda url, u=b_url: url != u)  # type: ignore[misc]
        ana.wait_for_selector("#transcript-id")
        ben.wait_for_selector("#transcript-id")
    with seeded.engine.connect() as conn:
        per_transcript = conn.execute(select(schema.Label.transcript_id, func.count()).group_by(schema.Label.transcript_id)).all()
        by = dict(conn.execute(select(schema.Label.reviewer, func.count()).group_by(schema.Label.reviewer)).all())
    assert by == {"ana": 8, "ben": 8}
    assert len(per_transcript) == 16 and all(n == 1 for _, n in per_transcript)
    ana.context.close()
    ben.context.close()


def test_a_viewer_cannot_label(browser: Browser, base_url: str, seeded: Store) -> None:
    page, _ = open_page(browser)
    sign_in(page, base_url, "vic")
    assert page.locator("nav >> text=Review queue").count() == 0
    response = page.goto(f"{base_url}/queue")
    assert response is not None and response.status == 403
    assert "viewer" in page.inner_text(".error-message")
    page.goto(f"{base_url}/transcripts/1")
    assert page.locator("form.relabel").count() == 0
    statuses = page.evaluate(
        """async () => {
            const claim = await window.oversightFetch('/api/queue/claim', {method: 'POST',
                headers: {'content-type': 'application/json'}, body: JSON.stringify({monitor: 'refusal', policy: 'random'})});
            const label = await window.oversightFetch('/api/queue/items/1/label', {method: 'POST',
                headers: {'content-type': 'application/json'}, body: JSON.stringify({label: 1})});
            return [claim.status, label.status];
        }"""
    )
    assert statuses == [403, 403]
    with seeded.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(schema.Label)).scalar_one() == 0
    page.context.close()


_INERT = """() => {
    const all = [...document.querySelectorAll('*')];
    return {
        flag: window.__xss === undefined ? null : String(window.__xss),
        inlineScripts: document.querySelectorAll('script:not([src])').length,
        foreignScripts: [...document.querySelectorAll('script[src]')].filter(s => !s.src.includes('/static/app.js')).length,
        handlers: all.filter(e => [...e.attributes].some(a => a.name.toLowerCase().startsWith('on'))).map(e => e.outerHTML.slice(0, 80)),
        jsLinks: [...document.querySelectorAll('[href], [src], [action]')].filter(e =>
            /^\\s*javascript:/i.test(e.getAttribute('href') || e.getAttribute('src') || e.getAttribute('action') || '')).length,
        frames: document.querySelectorAll('iframe, object, embed, meta[http-equiv]').length,
        styles: document.querySelectorAll('style').length,
        text: document.body.innerText,
    };
}"""


def test_the_xss_set_stays_inert(browser: Browser, seeded: Store, tmp_path: Path) -> None:
    report = import_file(seeded, write_xss_chats(tmp_path / "xss.jsonl"))
    assert report.imported == len(XSS_PAYLOADS) and report.rejected == 0
    run_monitor(seeded, build_monitor("refusal"))
    with seeded.engine.connect() as conn:
        xss_ids = list(conn.execute(select(schema.Transcript.id).where(schema.Transcript.id > 120).order_by(schema.Transcript.id)).scalars())
    app = create_app(seeded, WebSettings(runs_dir=tmp_path / "runs", batch_size=200))
    page, watch = open_page(browser)
    visited: list[str] = []

    def check(path: str) -> str:
        page.goto(base + path)
        found = page.evaluate(_INERT)
        assert found["flag"] is None, (path, found["flag"])
        assert (found["inlineScripts"], found["foreignScripts"], found["handlers"], found["jsLinks"], found["frames"], found["styles"]) == (0, 0, [], 0, 0, 0), path
        visited.append(path)
        return str(found["text"])

    with live_server(app) as base:
        sign_in(page, base, "ana")
        for tid in xss_ids:
            text = check(f"/transcripts/{tid}")
            payload = XSS_PAYLOADS[tid - xss_ids[0]]
            assert payload in text, f"payload {payload!r} is not shown as text"  # shown, character for character
        check("/transcripts?q=script")
        check("/transcripts?model=" + "%3Cscript%3Ewindow.__xss%3D%27model%27%3C%2Fscript%3E")
        listing = check("/transcripts?task=%3Cimg+src%3Dx+onerror%3Dwindow.__xss%3D%27task%27%3E")
        assert "XSS probe" in listing
        check("/")
        # Label an XSS transcript through the queue, with a payload as the note.
        page.goto(f"{base}/queue")
        page.check("input[name=policy][value=highest_score]")
        page.click("#start")
        page.wait_for_selector("#transcript-id")
        check(page.url.removeprefix(base))
        page.fill("#note", XSS_PAYLOADS[1])
        with page.expect_navigation():
            page.click("#label-fault")
        labelled = int(page.url.split("labelled=")[1])
        assert XSS_PAYLOADS[1] in check(f"/transcripts/{labelled}")
        check("/")
        page.context.close()
        page, admin_watch = open_page(browser)  # the admin's view of the audit log, with the note's label
        sign_in(page, base, "root")
        check("/admin/audit")
        check("/admin/users")
    assert watch.dialogs == [] and watch.errors == [] and admin_watch.dialogs == [] and admin_watch.errors == []
    assert accounts.get_user(seeded, "ana") is not None and len(visited) >= len(XSS_PAYLOADS) + 7
    page.context.close()
