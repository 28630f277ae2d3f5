"""The evaluators on exactly the stimuli the raters saw: the judged crops.

Raters compare small crops (:mod:`optiqa.judge.crops`), evaluators normally score whole images;
a disagreement between the two could then be a disagreement about *what* was judged. Here every
evaluator scores each run's version of every crop that appears in a vote (``image_id`` and box,
as stored with the vote), against the same crop of the reference for full-reference evaluators.
An evaluator that cannot score a crop (smaller than its minimum input size) is reported with the
metric's own error message, never silently scored on something else.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from optiqa.judge.crops import Box, read_rgb


@dataclass
class CropScores:
    """``scores[run][evaluator]``: one value per crop of ``crops`` (NaN where the run did not
    restore that image); ``unscored[evaluator]``: why it has no crop scores."""

    crops: list[tuple[str, Box]]
    scores: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    unscored: dict[str, str] = field(default_factory=dict)

    def mean(self, run: str, evaluator: str) -> float | None:
        """Mean over the crops the run has, or None."""
        v = self.scores.get(run, {}).get(evaluator)
        if v is None or not np.isfinite(v).any():
            return None
        return float(np.nanmean(v))


def voted_crops(votes) -> list[tuple[str, Box]]:
    """The distinct (image id, box) pairs the raters judged, sorted."""
    return sorted({(v.image_id, tuple(v.box)) for v in votes})


def _tensor(pixels: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1).float() / 255.0


def score_crops(images, crops, evaluators: list[str], device: str = "cpu") -> CropScores:
    """Score every run's crop of every judged region with every evaluator.

    ``images``: the study's :class:`~optiqa.judge.manifest.StudyImages`; ``crops``: (image id,
    (x, y, w, h)) pairs, e.g. :func:`voted_crops`. Scores are in each metric's own orientation.
    """
    import torch

    from optiqa.metrics import create_metric

    out = CropScores(list(crops))
    runs = list(images.runs)
    batches = []                     # per crop: (run indices, restored crops, reference crops)
    for image_id, (x, y, w, h) in out.crops:
        have = [i for i, r in enumerate(runs) if image_id in images.runs[r].images]
        ref = images.references.get(image_id)
        restored = torch.stack([_tensor(read_rgb(images.runs[runs[i]].images[image_id])
                                        [y:y + h, x:x + w]) for i in have]) if have else None
        reference = None if ref is None else _tensor(read_rgb(ref)[y:y + h, x:x + w])
        batches.append((have, restored, reference))
    for name in evaluators:
        metric = create_metric(name, device=device)
        fr = getattr(metric.info, "kind", "fr") == "fr"
        values = np.full((len(runs), len(out.crops)), np.nan)
        try:
            with torch.no_grad():
                for j, (have, restored, reference) in enumerate(batches):
                    if restored is None:
                        continue
                    if fr and reference is None:
                        raise ValueError(f"no reference for image {out.crops[j][0]}")
                    x = restored.to(device)
                    s = metric(x, reference.to(device).expand_as(x)) if fr else metric(x)
                    values[have, j] = s.detach().float().cpu().numpy()
        except ValueError as e:     # e.g. a crop below the metric's minimum size
            out.unscored[name] = str(e)
            continue
        for i, r in enumerate(runs):
            out.scores.setdefault(r, {})[name] = values[i]
    return out
