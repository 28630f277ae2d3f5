"""End to end in a real headless Chromium (Debian's ``chromium``), driven by Playwright.

The ``browser`` fixture of ``conftest.py`` installs Debian's ``chromium`` when
``/usr/bin/chromium`` is missing and we are root; otherwise the tests skip and say why.
Playwright's own browser downloads are never used: the driver launches ``/usr/bin/chromium``.
"""
from __future__ import annotations

import sqlite3
import time

import pytest

from judge_helpers import make_study
from optiqa.judge.app import JudgeServer
from optiqa.judge.service import JudgeOptions
from optiqa.judge.store import DB_NAME

pytest.importorskip("flask", reason="the judging server needs Flask (pip install 'optiqa[judge]')")


def stored(study):
    with sqlite3.connect(study / DB_NAME) as con:
        return con.execute("SELECT vote_id, rater, choice, response_ms FROM votes "
                           "ORDER BY voted_at").fetchall()


def wait_for_votes(study, n, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(stored(study)) >= n:
            return stored(study)
        time.sleep(0.05)
    raise AssertionError(f"expected {n} votes, found {len(stored(study))}")


def poll(page, script, arg=None, timeout=20.0):
    """Until ``script`` (a JS function of ``arg``) is truthy. Not ``wait_for_function``: that
    evaluates a string in the page, which the page's Content-Security-Policy rightly forbids."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if page.evaluate(script, arg):
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {script}")


def wait_ready(page, previous=None):
    """Until a trial (other than ``previous``) is on screen with both images decoded."""
    poll(page, "prev => { const p = document.getElementById('pair');"
               " return p.dataset.ready && p.dataset.ready === p.dataset.trial"
               " && p.dataset.ready !== prev; }", previous)
    return page.get_attribute("#pair", "data-trial")


def test_rate_with_keys_and_clicks_then_reload(browser, tmp_path):
    study = make_study(tmp_path / "study", size=96)
    options = JudgeOptions(crop_size=32, trials_per_rater=20)
    with JudgeServer(study, port=0, options=options) as server:
        page = browser.new_page(viewport={"width": 1000, "height": 600})
        page.goto(server.url)
        assert page.is_visible("#rater-input") and not page.is_visible("#progress")
        page.fill("#rater-input", "alice")
        page.press("#rater-input", "Enter")
        first = wait_ready(page)

        # nearest-neighbour enlargement by an integer factor
        left = page.locator("#left img")
        width = left.evaluate("img => img.width")
        assert width % 32 == 0 and width >= 64
        assert left.evaluate("img => getComputedStyle(img).imageRendering") == "pixelated"

        page.keyboard.press("ArrowLeft")
        votes = wait_for_votes(study, 1)
        assert votes[0][:3] == (first, "alice", "left") and votes[0][3] > 0
        second = wait_ready(page, first)

        # holding R shows the reference in both places; releasing it brings the pair back
        page.keyboard.down("r")
        assert page.locator("#pair.reference").count() == 1
        assert left.get_attribute("src").endswith(f"/api/trial/{second}/reference.png")
        assert page.get_attribute("#right img", "src").endswith("/reference.png")
        page.keyboard.up("r")
        assert left.get_attribute("src").endswith(f"/api/trial/{second}/left.png")

        page.keyboard.press("ArrowRight")
        third = wait_ready(page, second)
        page.click("#right img")
        votes = wait_for_votes(study, 3)
        assert [v[:3] for v in votes] == [(first, "alice", "left"), (second, "alice", "right"),
                                          (third, "alice", "right")]
        fourth = wait_ready(page, third)
        assert page.inner_text("#count") == "3 / 20"

        # a reload continues where the rater was: same name, same pair, same progress
        page.reload()
        assert wait_ready(page) == fourth
        assert page.inner_text("#rater-name") == "alice"
        assert page.inner_text("#count") == "3 / 20"
        page.screenshot(path=str(tmp_path / "judge.png"))
        assert (tmp_path / "judge.png").stat().st_size > 5000
        page.close()
    assert len(stored(study)) == 3


def test_votes_made_while_the_server_is_down_arrive_later(browser, tmp_path):
    """The page keeps unsent votes and sends them when the server is back (same port)."""
    study = make_study(tmp_path / "study", size=96)
    options = JudgeOptions(crop_size=32)
    server = JudgeServer(study, port=0, options=options).start()
    port = server.port
    page = browser.new_page()
    try:
        page.goto(server.url)
        page.fill("#rater-input", "bob")
        page.press("#rater-input", "Enter")
        first = wait_ready(page)
        # the next pair's images are preloaded once both responses are complete
        upcoming = [t.trial_id for t in server.service.store.pending("bob")
                    if t.trial_id != first]
        poll(page, "tid => ['left', 'right'].every(side => performance"
                   ".getEntriesByType('resource').some(e => e.name.endsWith("
                   "`/api/trial/${tid}/${side}.png`) && e.responseEnd > 0))", upcoming[0])
        server.stop()
        page.keyboard.press("ArrowLeft")          # the next pair was preloaded: no server needed
        wait_ready(page, first)
        poll(page, "() => document.getElementById('status').textContent"
                   ".includes('unreachable')")
        assert stored(study) == []
        server = JudgeServer(study, port=port, options=options).start()
        votes = wait_for_votes(study, 1)
        assert votes[0][:3] == (first, "bob", "left")
    finally:
        page.close()
        server.stop()
