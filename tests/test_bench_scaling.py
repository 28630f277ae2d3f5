"""`bench/assess_scaling.py`: ``--deadline HH:MM`` is the next time the UTC clock reads HH:MM;
the fits and curves keep each single run's cumulative times apart."""
import datetime as dt
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from assess_scaling import next_utc, series  # noqa: E402


def _utc(*fields) -> float:
    return dt.datetime(*fields, tzinfo=dt.timezone.utc).timestamp()


def test_later_today():
    assert next_utc("23:30", _utc(2026, 12, 6, 22, 5, 40)) == _utc(2026, 12, 6, 23, 30)


def test_past_midnight_is_tomorrow():
    # started at 22:05, a deadline of 00:25 is 2 h 20 min later, not "already passed"
    assert next_utc("00:25", _utc(2026, 12, 6, 22, 5)) == _utc(2026, 12, 7, 0, 25)
    # across a month's and a year's end
    assert next_utc("01:00", _utc(2026, 12, 31, 23, 0)) == _utc(2027, 1, 1, 1, 0)


def test_the_current_minute_means_tomorrow():
    now = _utc(2026, 12, 6, 14, 48, 0)
    assert next_utc("14:48", now) == now + 86400
    assert next_utc("14:49", now) == now + 60


@pytest.mark.parametrize("bad", ["24:00", "12:60", "1230", "noon", "12:3x", ""])
def test_bad_times_are_named(bad):
    with pytest.raises(ValueError, match="not a UTC time of day HH:MM"):
        next_utc(bad, _utc(2026, 12, 6, 12, 0))


def test_each_single_run_is_a_series_of_its_own():
    xeon, amd = "Intel Xeon, 2 cores", "AMD EPYC, 2 cores"
    rows = [dict(metric="dists", machine=xeon, within="1/4", pairs=165),
            dict(metric="dists", machine=xeon, within="1/4", pairs=1274),
            dict(metric="dists", machine=xeon, within="all", pairs=1274),
            dict(metric="dists", machine=xeon, fraction="all", single_run=True, pairs=10125),
            dict(metric="dists", machine=xeon, fraction="1/256", pairs=40),   # separate runs
            dict(metric="dists", machine=xeon, fraction="1/128", within=None, pairs=80),
            dict(metric="dists", machine=amd, fraction="1/256", pairs=40),
            dict(metric="ssim", machine=xeon, fraction="1/256", pairs=40)]
    keys = [series(r) for r in rows]
    assert keys[0] == keys[1] == ("dists", xeon, "inside one run of 1/4")
    assert keys[2] == keys[3] == ("dists", xeon, "inside one run of all")   # marks and its end
    assert keys[4] == keys[5] == ("dists", xeon, "separate runs")
    assert len(set(keys)) == 5       # the AMD rows and the other metric apart too
