"""What the judging server does, without HTTP: issue trials, check and store votes, cut crops.

The web layer (:mod:`optiqa.judge.app`) only parses requests and calls :class:`JudgingService`,
so every rule below is tested directly. A vote must answer a trial the server issued to the same
rater; the pair and the crop come from that trial, so a vote cannot name an unknown pair or crop.
"""
from __future__ import annotations

import math
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from optiqa.core.errors import ConfigError, InputError
from optiqa.judge.crops import CropCache, crops_for_image
from optiqa.judge.fit import bradley_terry
from optiqa.judge.manifest import load_manifest
from optiqa.judge.schedule import (SCHEDULE_ALPHA, ScheduleOptions, plan_repeat, plan_trial,
                                   rng_for)
from optiqa.judge.store import DB_NAME, JudgmentStore, Trial

RATER_NAME = re.compile(r"^[\w][\w .@'-]{0,39}$")
TRIAL_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
VOTE_FIELDS = {"trial_id", "rater", "image", "crop", "choice", "response_ms"}
SIDES = ("left", "right", "reference")
MAX_RESPONSE_MS = 3_600_000.0


@dataclass(frozen=True)
class JudgeOptions:
    crop_size: int = 96
    crops_per_image: int = 3
    trials_per_rater: int = 60        # the target shown in the progress bar
    question: str = "Which image looks better?"
    vote_rate: float = 5.0            # sustained votes per second per rater
    vote_burst: int = 20              # votes a rater may send at once
    schedule: ScheduleOptions = field(default_factory=ScheduleOptions)


class Rejected(Exception):
    """A request the service refuses: ``status`` is the HTTP status, the message says why."""

    def __init__(self, status: int, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.status, self.retry_after = status, retry_after


class RateLimiter:
    """Token bucket per key: ``burst`` at once, then ``rate`` per second."""

    def __init__(self, rate: float, burst: int, clock=time.monotonic):
        self.rate, self.burst, self._clock = rate, burst, clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0 if allowed (one token taken), else the seconds until the next token."""
        with self._lock:
            now = self._clock()
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens < 1:
                self._buckets[key] = (tokens, now)
                return (1 - tokens) / self.rate
            self._buckets[key] = (tokens - 1, now)
            return 0.0


def check_rater(name) -> str:
    if not isinstance(name, str) or not RATER_NAME.match(name.strip()):
        raise Rejected(400, "rater name: 1-40 letters, digits, spaces or . @ ' - _")
    return name.strip()


class JudgingService:
    """Manifest, crops, store and scheduler of one study folder."""

    def __init__(self, study_dir, options: JudgeOptions | None = None):
        self.options = options or JudgeOptions()
        if self.options.crop_size < 8 or self.options.crops_per_image < 1:
            raise ConfigError("crop_size must be >= 8 and crops_per_image >= 1")
        self.images = load_manifest(study_dir)
        self.study_dir = self.images.study_dir
        self.crops = {}
        for image_id in self.images.comparable_images():
            runs = self.images.runs_with(image_id)
            source = self.images.references.get(image_id,
                                                self.images.runs[runs[0]].images[image_id])
            self.crops[image_id] = crops_for_image(image_id, source, self.options.crop_size,
                                                   self.options.crops_per_image)
        self.crops_by_pair: dict[tuple[str, str], list] = {}
        names = list(self.images.runs)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                pair = tuple(sorted((a, b)))
                shared = [c for image_id, cs in self.crops.items()
                          if image_id in self.images.runs[a].images
                          and image_id in self.images.runs[b].images for c in cs]
                if shared:
                    self.crops_by_pair[pair] = shared
        if not self.crops_by_pair:
            raise InputError("the image manifest has no image restored by two runs: nothing "
                             "to compare", option="study_dir")
        self.store = JudgmentStore(self.study_dir / DB_NAME)
        self.limiter = RateLimiter(self.options.vote_rate, self.options.vote_burst)
        self.png = CropCache()
        bradley_terry(["a", "b"], {("a", "b"): 1})  # imports choix now, not at the first vote

    def close(self) -> None:
        self.store.close()

    # trials -------------------------------------------------------------------------------
    def _servable(self, t: Trial) -> bool:
        """Pending trials from an earlier manifest may name runs or images no longer there."""
        return all(t.image_id in self.images.runs.get(r, _NO_RUN).images
                   for r in (t.run_left, t.run_right))

    def trials(self, rater: str) -> list[Trial]:
        """The rater's pending trials, topped up to the queue length (issued and stored first)."""
        rater = check_rater(rater)
        options = self.options.schedule
        with self.store.lock:
            history = self.store.rater_trials(rater)
            pending = [t for t, answered in history if not answered and self._servable(t)]
            while len(pending) < options.queue:
                trial = self._issue(rater, history)
                history.append((trial, False))
                pending.append(trial)
        return pending

    def _issue(self, rater: str, history: list) -> Trial:
        seq = (history[-1][0].seq if history else 0) + 1
        rng = rng_for(self.options.schedule.seed, rater, seq)
        plan = plan_repeat(history, seq, self.options.schedule, rng)
        if plan is None:
            pair_counts, crop_counts = self.store.scheduled_counts()
            scores = bradley_terry(list(self.images.runs), self.store.wins(), SCHEDULE_ALPHA)
            seen = {(t.pair, t.crop_key) for t, _ in history}
            plan = plan_trial(list(self.crops_by_pair), self.crops_by_pair, pair_counts,
                              crop_counts, scores, seen, rng)
        trial = Trial(trial_id=secrets.token_urlsafe(12), rater=rater, seq=seq,
                      image_id=plan.image_id, crop=plan.crop, box=plan.box,
                      run_left=plan.run_left, run_right=plan.run_right,
                      repeat_of=plan.repeat_of, issued_at=time.time())
        self.store.issue(trial)
        return trial

    def progress(self, rater: str) -> dict:
        return {"votes": self.store.vote_count(rater), "target": self.options.trials_per_rater,
                "all_votes": self.store.vote_count()}

    def trial_json(self, t: Trial) -> dict:
        """What the page needs; run names are not sent (the comparison stays blind)."""
        base = f"/api/trial/{t.trial_id}"
        return {"trial_id": t.trial_id, "image": t.image_id, "crop": t.crop,
                "width": t.box[2], "height": t.box[3],
                "left": f"{base}/left.png", "right": f"{base}/right.png",
                "reference": (f"{base}/reference.png"
                              if t.image_id in self.images.references else None)}

    # votes --------------------------------------------------------------------------------
    def vote(self, payload) -> bool:
        """Check and store one vote; True if stored, False if this trial was answered already.

        Raises :class:`Rejected` (400 malformed, 429 too fast) and then stores nothing.
        """
        if not isinstance(payload, dict):
            raise Rejected(400, "a vote is a JSON object")
        if set(payload) != VOTE_FIELDS:
            raise Rejected(400, f"a vote has exactly the fields {', '.join(sorted(VOTE_FIELDS))}")
        rater = check_rater(payload["rater"])
        trial_id, choice, ms = payload["trial_id"], payload["choice"], payload["response_ms"]
        if not isinstance(trial_id, str) or not TRIAL_ID.match(trial_id):
            raise Rejected(400, "malformed trial_id")
        if choice not in ("left", "right"):
            raise Rejected(400, "choice must be 'left' or 'right'")
        if (isinstance(ms, bool) or not isinstance(ms, (int, float)) or not math.isfinite(ms)
                or not 0 < ms <= MAX_RESPONSE_MS):
            raise Rejected(400, "response_ms must be a number of milliseconds in (0, 3600000]")
        trial = self.store.trial(trial_id)
        if trial is None or trial.rater != rater:
            raise Rejected(400, "unknown trial for this rater")
        if (payload["image"] != trial.image_id or isinstance(payload["crop"], bool)
                or payload["crop"] != trial.crop):
            raise Rejected(400, "image or crop does not match the trial")
        with self.store.lock:
            if self.store.trial_answered(trial_id):
                return False
            wait = self.limiter.take(rater)
            if wait:
                raise Rejected(429, "too many votes; slow down", retry_after=wait)
            return self.store.record_vote(trial, choice, float(ms))

    # images -------------------------------------------------------------------------------
    def crop_png(self, trial_id: str, side: str) -> bytes | None:
        """The crop of one side of a trial (None: unknown trial or side, no reference)."""
        if side not in SIDES or not isinstance(trial_id, str) or not TRIAL_ID.match(trial_id):
            return None
        t = self.store.trial(trial_id)
        if t is None or not self._servable(t):
            return None
        if side == "reference":
            path = self.images.references.get(t.image_id)
        else:
            path = self.images.runs[t.run_left if side == "left" else t.run_right].images[
                t.image_id]
        # re-check at every request: a link swapped after start-up must not lead outside
        if path is None or not Path(path).resolve().is_relative_to(self.study_dir):
            return None
        return self.png.png(path, t.box)


class _NoRun:
    images: dict = {}


_NO_RUN = _NoRun()
