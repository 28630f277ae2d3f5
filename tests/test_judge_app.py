"""The judging server over real HTTP on 127.0.0.1: storage, restarts, concurrency, security."""
from __future__ import annotations

import http.client
import json
import sqlite3
import threading
from urllib.parse import urlsplit

import pytest

from judge_helpers import make_study
from optiqa.core.errors import ConfigError
from optiqa.judge.app import JudgeServer, check_bind
from optiqa.judge.schedule import ScheduleOptions
from optiqa.judge.service import JudgeOptions
from optiqa.judge.store import DB_NAME

pytest.importorskip("flask", reason="the judging server needs Flask (pip install 'optiqa[judge]')")

FAST = JudgeOptions(crop_size=32, vote_rate=1000.0, vote_burst=1000)
TOKEN = "s3cret-token-for-tests"


def request(server, method, path, body=None, headers=None):
    """(status, headers, body bytes); the path goes out exactly as given (no normalisation)."""
    con = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        payload = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
        hdrs = {"Content-Type": "application/json"} if isinstance(body, (dict, list)) else {}
        con.request(method, path, body=payload, headers={**hdrs, **(headers or {})})
        response = con.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        con.close()


def get_json(server, path, **kw):
    status, _, body = request(server, "GET", path, **kw)
    assert status == 200, (status, body)
    return json.loads(body)


def trials(server, rater, **kw):
    return get_json(server, f"/api/trials?rater={rater}", **kw)["trials"]


def ballot(trial, rater, choice="left", ms=640.0):
    return {"trial_id": trial["trial_id"], "rater": rater, "image": trial["image"],
            "crop": trial["crop"], "choice": choice, "response_ms": ms}


def stored_votes(study):
    if not (study / DB_NAME).exists():
        return []
    with sqlite3.connect(study / DB_NAME) as con:
        return con.execute("SELECT vote_id, rater, choice, winner, loser FROM votes").fetchall()


@pytest.fixture
def study(tmp_path):
    return make_study(tmp_path / "study")


@pytest.fixture
def server(study):
    with JudgeServer(study, port=0, options=FAST) as s:
        yield s


def test_vote_is_stored_at_once_and_survives_a_restart(study):
    with JudgeServer(study, port=0, options=FAST) as s:
        first = trials(s, "ann")
        assert len(first) == 2 and first[0]["width"] == 32
        status, _, body = request(s, "POST", "/api/vote", ballot(first[0], "ann", "right"))
        assert status == 200 and json.loads(body)["stored"]
        assert [v[:3] for v in stored_votes(study)] == [(first[0]["trial_id"], "ann", "right")]
        pending = trials(s, "ann")
        assert pending[0]["trial_id"] == first[1]["trial_id"]   # the next one, as preloaded
    with JudgeServer(study, port=0, options=FAST) as s:          # a restart loses nothing ...
        assert len(stored_votes(study)) == 1
        assert trials(s, "ann")[0]["trial_id"] == pending[0]["trial_id"]  # ... and resumes
        progress = get_json(s, "/api/trials?rater=ann")["progress"]
        assert progress == {"votes": 1, "target": 60, "all_votes": 1}


def test_a_resent_vote_is_stored_once(server, study):
    t = trials(server, "ann")[0]
    bodies = [json.loads(request(server, "POST", "/api/vote", ballot(t, "ann", c))[2])
              for c in ("left", "left", "right")]
    assert [b["stored"] for b in bodies] == [True, False, False]
    assert [v[2] for v in stored_votes(study)] == ["left"]       # the first answer stands


def test_eight_raters_at_once_store_exactly_400_votes(study):
    """8 raters post 50 votes each at the same time, every vote sent twice (a retry)."""
    errors = []
    start = threading.Barrier(8)

    def rater(name):
        try:
            start.wait()
            for _ in range(50):
                t = trials(server, name)[0]
                for _ in range(2):
                    status, _, body = request(server, "POST", "/api/vote", ballot(t, name))
                    assert status == 200, body
        except Exception as e:  # noqa: BLE001  (reported below)
            errors.append(e)

    with JudgeServer(study, port=0, options=FAST) as server:
        threads = [threading.Thread(target=rater, args=(f"rater{i}",)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
    assert not errors, errors[:3]
    votes = stored_votes(study)
    assert len(votes) == 400 and len({v[0] for v in votes}) == 400
    assert {r: sum(v[1] == r for v in votes) for r in {v[1] for v in votes}} == {
        f"rater{i}": 50 for i in range(8)}
    with sqlite3.connect(study / DB_NAME) as con:  # each answered trial was issued to its rater
        assert con.execute("SELECT COUNT(*) FROM votes v JOIN trials t ON t.trial_id = "
                           "v.vote_id AND t.rater = v.rater").fetchone()[0] == 400


def test_malformed_votes_get_400_and_store_nothing(server, study):
    ann = trials(server, "ann")[0]
    bob = trials(server, "bob")[0]
    good = ballot(ann, "ann")
    bad = [
        {k: v for k, v in good.items() if k != "choice"},          # missing field
        {**good, "extra": 1},                                      # unknown field
        {**good, "choice": "up"}, {**good, "choice": "LEFT"}, {**good, "choice": None},
        {**good, "trial_id": "doesnotexist0"},                     # unknown trial (pair)
        {**good, "trial_id": "../../judgments"},
        {**good, "trial_id": bob["trial_id"]},                     # someone else's trial
        {**good, "crop": ann["crop"] + 1}, {**good, "crop": True},  # unknown crop
        {**good, "image": "Set5/other"},
        {**good, "response_ms": -5}, {**good, "response_ms": 0}, {**good, "response_ms": "fast"},
        {**good, "response_ms": 1e12}, {**good, "response_ms": False},
        {**good, "rater": ""}, {**good, "rater": "<script>"}, {**good, "rater": "x" * 41},
        [good], "left",
    ]
    for payload in bad:
        status, _, body = request(server, "POST", "/api/vote", payload)
        assert status == 400, (payload, status, body)
        assert "error" in json.loads(body)
    for raw, ctype in [(b"{not json", "application/json"), (json.dumps(good).encode(),
                                                            "text/plain"),
                       (b"", "application/json")]:
        status, _, _ = request(server, "POST", "/api/vote", raw, {"Content-Type": ctype})
        assert status == 400, raw
    status, _, _ = request(server, "POST", "/api/vote", b"{" + b" " * 20000 + b"}",
                           {"Content-Type": "application/json"})
    assert status == 413
    assert stored_votes(study) == []
    assert request(server, "POST", "/api/vote", good)[0] == 200
    assert len(stored_votes(study)) == 1


def test_votes_are_rate_limited_per_rater(study):
    options = JudgeOptions(crop_size=32, vote_rate=0.001, vote_burst=3)
    with JudgeServer(study, port=0, options=options) as s:
        statuses = []
        for _ in range(5):
            t = trials(s, "ann")[0]
            status, headers, _ = request(s, "POST", "/api/vote", ballot(t, "ann"))
            statuses.append(status)
        assert statuses == [200, 200, 200, 429, 429]
        assert int(headers["Retry-After"]) >= 1
        t = trials(s, "bob")[0]                                     # per rater: bob may vote
        assert request(s, "POST", "/api/vote", ballot(t, "bob"))[0] == 200
    assert sorted(v[1] for v in stored_votes(study)) == ["ann"] * 3 + ["bob"]


def test_only_trial_crops_are_served(server, study):
    t = trials(server, "ann")[0]
    for side in ("left", "right", "reference"):
        status, headers, body = request(server, "GET", t[side])
        assert status == 200 and headers["Content-Type"] == "image/png"
        assert body[:8] == b"\x89PNG\r\n\x1a\n"
    tid = t["trial_id"]
    for path in ["/judgments.db", "/../judgments.db", "/static/../judgments.db",
                 "/static/%2e%2e/judgments.db", "/static/..%2fjudgments.db",
                 "/%2e%2e/%2e%2e/etc/passwd", "//etc/passwd", "/images/manifest.json",
                 "/images/reference/Set5/baby.png", "/images/", "/static/", "/static",
                 "/static/index.html", "/api/", "/api/trial/", f"/api/trial/{tid}/",
                 f"/api/trial/{tid}/middle.png", f"/api/trial/{tid}/left.jpg",
                 f"/api/trial/{tid}/../../../images/manifest.json",
                 f"/api/trial/{tid}/..%2f..%2fjudgments.db", "/api/trial/unknowntrial/left.png",
                 "/api/trial/../../judgments.db/left.png",
                 "/api/trial/%2e%2e%2f%2e%2e%2fjudgments.db/left.png"]:
        status, _, body = request(server, "GET", path)
        assert status == 404, (path, status)
        assert b"SQLite" not in body and b"version" not in body


def test_no_reference_no_reference_crop(tmp_path):
    study = make_study(tmp_path / "s", reference=False)
    with JudgeServer(study, port=0, options=FAST) as s:
        t = trials(s, "ann")[0]
        assert t["reference"] is None
        assert request(s, "GET", f"/api/trial/{t['trial_id']}/reference.png")[0] == 404


def test_non_loopback_bind_needs_a_token(study, capsys):
    from optiqa.cli import main

    with pytest.raises(ConfigError, match="not a loopback address"):
        JudgeServer(study, host="0.0.0.0", port=0)
    with pytest.raises(ConfigError, match="too short"):
        check_bind("0.0.0.0", "short")
    assert not (study / DB_NAME).exists()               # refused before anything was opened
    assert main(["judge", "serve", str(study), "--host", "0.0.0.0", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "not a loopback address" in err and "--token" in err
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        check_bind(host, None)
    check_bind("0.0.0.0", TOKEN)


def test_token_guards_everything(study):
    with JudgeServer(study, port=0, token=TOKEN, options=FAST) as s:
        for path in ["/", "/api/config", "/api/trials?rater=ann", "/static/judge.js",
                     f"/?token={TOKEN}x"]:
            assert request(s, "GET", path)[0] == 401, path
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        t = trials(s, "ann", headers=bearer)[0]
        assert request(s, "GET", t["left"])[0] == 401
        assert request(s, "POST", "/api/vote", ballot(t, "ann"))[0] == 401
        status, headers, _ = request(s, "GET", f"/?token={TOKEN}")
        assert status == 303 and headers["Location"] == "/"
        cookie = headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        jar = {"Cookie": cookie.split(";")[0]}
        assert request(s, "GET", "/", headers=jar)[0] == 200
        assert request(s, "GET", t["left"], headers=jar)[0] == 200
        assert request(s, "POST", "/api/vote", ballot(t, "ann"), headers=jar)[0] == 200
    assert len(stored_votes(study)) == 1


def test_foreign_hosts_and_origins_are_refused(server, study):
    t = trials(server, "ann")[0]
    assert request(server, "GET", "/", headers={"Host": "evil.example:8765"})[0] == 400
    status, _, _ = request(server, "POST", "/api/vote", ballot(t, "ann"),
                           headers={"Origin": "http://evil.example"})
    assert status == 403
    assert stored_votes(study) == []
    own = f"http://127.0.0.1:{server.port}"
    assert request(server, "POST", "/api/vote", ballot(t, "ann"),
                   headers={"Origin": own})[0] == 200
    status, headers, _ = request(server, "GET", "/")
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"


def test_repeated_trials_are_issued_with_sides_swapped(study):
    options = JudgeOptions(crop_size=32, vote_rate=1000.0, vote_burst=1000,
                           schedule=ScheduleOptions(repeat_every=4, max_repeats=2,
                                                    repeat_min_gap=2))
    with JudgeServer(study, port=0, options=options) as s:
        for _ in range(12):
            t = trials(s, "ann")[0]
            assert request(s, "POST", "/api/vote", ballot(t, "ann"))[0] == 200
    with sqlite3.connect(study / DB_NAME) as con:
        rows = con.execute("SELECT r.run_left, r.run_right, o.run_left, o.run_right, r.box, "
                           "o.box FROM trials r JOIN trials o ON o.trial_id = r.repeat_of"
                           ).fetchall()
    assert len(rows) == 2
    assert all(r[0] == r[3] and r[1] == r[2] and r[4] == r[5] for r in rows)


def test_fit_command(server, study, tmp_path, capsys):
    from optiqa.cli import main

    assert main(["judge", "fit", str(study), "--bootstrap", "20"]) == 0
    assert "no votes yet" in capsys.readouterr().out
    for _ in range(12):
        t = trials(server, "ann")[0]
        assert request(server, "POST", "/api/vote", ballot(t, "ann"))[0] == 200
    out_json = tmp_path / "human.json"
    assert main(["judge", "fit", str(study), "--bootstrap", "20", "--pairs",
                 "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    # the 10th trial repeats an earlier one: it measures consistency and is not scored
    assert "human scores: Bradley-Terry, 11 votes from 1 rater(s)" in out
    assert "bootstrap resamples of raters and images (1 raters" in out
    assert "DISTS + patch D, w=0.005" in out and "votes per pair" in out
    data = json.loads(out_json.read_text())
    assert data["has_votes"] and (data["n_votes"], data["n_repeat_votes"]) == (11, 1)
    assert {r["run"] for r in data["runs"]} == {"l1__none", "dists__patch", "lpips__unet",
                                                "bicubic"}


def test_page_and_assets(server):
    status, headers, body = request(server, "GET", "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b'src="/static/judge.js"' in body
    assert request(server, "GET", "/static/judge.js")[0] == 200
    assert get_json(server, "/api/config")["study"] == "test"
    url = urlsplit(server.url)
    assert url.hostname == "127.0.0.1" and url.port == server.port


def test_cli_and_fit_api_import_neither_torch_nor_flask():
    import subprocess
    import sys

    code = ("import sys; from optiqa.cli import build_parser; build_parser(); import optiqa.judge; "
            "print(sorted(m for m in ('torch', 'flask', 'choix') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
    help_text = subprocess.run([sys.executable, "-m", "optiqa", "judge", "serve", "--help"],
                               capture_output=True, text=True, check=True).stdout
    assert "any other needs --token" in " ".join(help_text.split())
