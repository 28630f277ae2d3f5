"""Score image files with registered metrics (what ``optiqa score`` runs).

Inputs: two files; two folders paired by name (:func:`optiqa.data.io.match_pairs`); a folder of
distorted images against one reference file; or, for no-reference metrics only, images alone.

Scoring does not give up on the first problem: a metric that cannot score an image (too small,
say) leaves that cell empty with the reason, a pair that cannot be read leaves its row empty, a
distorted file without a reference is skipped with a warning. ``strict=True`` makes any of these
an error (:class:`~optiqa.core.errors.InputError`). When nothing at all could be scored, the
first reason is raised either way.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from optiqa.core.errors import InputError, OptiqaError
from optiqa.data.io import image_channels, list_images, match_pairs, read_image
from optiqa.metrics import create_metric, list_metrics


@dataclass
class PairScores:
    distorted: Path
    reference: Path | None
    scores: dict[str, float | None] = field(default_factory=dict)  # None: not scored
    errors: dict[str, str] = field(default_factory=dict)           # metric -> why not
    error: str | None = None                                       # the whole row failed


@dataclass
class ScoreReport:
    metrics: list[str]
    rows: list[PairScores]
    with_reference: bool
    skipped: list[Path] = field(default_factory=list)  # distorted files without a reference
    warnings: list[str] = field(default_factory=list)  # one line each, for the user
    capped: dict[str, float] = field(default_factory=dict)  # metric -> its cap (PSNR: 100 dB)

    def values(self, name: str) -> list[float]:
        return [r.scores[name] for r in self.rows if r.scores.get(name) is not None]

    def mean(self, name: str) -> float | None:
        v = self.values(name)
        return sum(v) / len(v) if v else None

    def at_cap(self, name: str) -> int:
        """How many scores of ``name`` sit at its cap (identical images for PSNR)."""
        cap = self.capped.get(name)
        return 0 if cap is None else sum(abs(v - cap) < 1e-3 for v in self.values(name))

    def to_dicts(self) -> list[dict]:
        return [{"distorted": str(r.distorted),
                 **({"reference": str(r.reference)} if self.with_reference else {}),
                 **{n: r.scores.get(n) for n in self.metrics},
                 **({"errors": {n: r.errors[n] for n in self.metrics if n in r.errors}}
                    if r.errors else {})} for r in self.rows]


def load_pair(dist_path: Path, ref_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Read a pair as ``(1, 3, H, W)`` tensors; a size mismatch names both files."""
    x, ref = read_image(dist_path), read_image(ref_path)
    if x.shape != ref.shape:
        raise InputError(f"{dist_path}: size {x.shape[2]}x{x.shape[1]} differs from its reference "
                         f"{ref_path} ({ref.shape[2]}x{ref.shape[1]}; width x height)")
    return x[None], ref[None]


def _inputs(metrics: dict, distorted, reference, strict: bool):
    """``(pairs or images, with_reference, skipped, warnings)`` after checking that the metrics
    fit what was given."""
    fr = [n for n, m in metrics.items() if m.info.kind != "nr"]
    warnings = []
    if reference is None:
        if fr:
            nr_known = [n for n, i in list_metrics().items() if i.kind == "nr"]
            raise InputError(
                f"{', '.join(fr)}: full-reference metric{'s need' if len(fr) > 1 else ' needs'} a "
                "reference image; without one only no-reference metrics apply ("
                + (", ".join(nr_known) if nr_known else "none is registered") + ")",
                option="reference")
    elif not fr:
        warnings.append(f"only no-reference metrics given: the reference {reference} is not used")
        reference = None
    if reference is None:
        path = Path(distorted)
        if not path.exists():
            raise InputError(f"{path}: no such file or folder")
        files = list_images(path) if path.is_dir() else [path]
        return [(f, None) for f in files], False, [], warnings
    pairing = match_pairs(distorted, reference)
    if pairing.unmatched:
        names = [p.name for p in pairing.unmatched]
        shown = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")
        what = f"in {distorted} without a reference in {reference}: {shown}"
        if strict or not pairing.pairs:
            raise InputError(f"{len(names)} distorted image(s) {what}" if pairing.pairs else
                             f"none of the distorted images has a reference; {what}")
        warnings.append(f"skipped {len(names)} distorted image(s) {what}")
    return pairing.pairs, True, pairing.unmatched, warnings


def _colour_warning(pairs) -> str | None:
    """One line naming pairs where one image is greyscale and the other colour."""
    mixed = []
    for d, r in pairs:
        cd, cr = image_channels(d), image_channels(r)
        if cd and cr and cd != cr:
            mixed.append(f"{d.name} ({'grey' if cd == 1 else 'RGB'}) vs {r.name} "
                         f"({'grey' if cr == 1 else 'RGB'})")
    if not mixed:
        return None
    shown = ", ".join(mixed[:5]) + (" ..." if len(mixed) > 5 else "")
    return (f"{len(mixed)} pair(s) compare a greyscale image with a colour one (grey is scored "
            f"as three equal channels, so colour metrics see the missing colour as distortion): "
            f"{shown}")


@torch.no_grad()
def score_files(metric_names: list[str], distorted, reference=None, device: str = "cpu",
                progress: bool = True, strict: bool = False) -> ScoreReport:
    """Score images; see the module docstring. All metrics are created before any image is read,
    so an unknown name or missing weights fail fast. Images are scored one pair at a time
    because folder images may differ in size."""
    from optiqa.metrics.pixel import PSNR, PSNR_CAP_DB

    names = list(dict.fromkeys(metric_names or []))
    if not names:
        raise InputError("no metric given (`optiqa metrics` lists them)", option="metric")
    metrics = {name: create_metric(name, device=device) for name in names}
    items, with_ref, skipped, warnings = _inputs(metrics, distorted, reference, strict)
    if with_ref:
        line = _colour_warning(items)
        if line:
            warnings.append(line)
    report = ScoreReport(names, [], with_ref, skipped, warnings,
                         {n: PSNR_CAP_DB for n, m in metrics.items() if isinstance(m, PSNR)})
    first_error = None
    for dist_path, ref_path in tqdm(items, desc="scoring", unit="image",
                                    disable=not progress or len(items) < 4):
        row = PairScores(dist_path, ref_path)
        report.rows.append(row)
        try:
            if ref_path is None:
                x, ref = read_image(dist_path)[None].to(device), None
            else:
                x, ref = (t.to(device) for t in load_pair(dist_path, ref_path))
        except InputError as e:
            if strict:
                raise
            row.error = str(e)
            row.errors = {n: str(e) for n in names}
            row.scores = dict.fromkeys(names)
            first_error = first_error or str(e)
            continue
        for name, metric in metrics.items():
            try:
                value = metric(x) if metric.info.kind == "nr" else metric(x, ref)
                row.scores[name] = float(value[0])
            except OptiqaError as e:
                message = f"{dist_path}: {name}: {e}"
                if strict:
                    raise InputError(message) from None
                row.scores[name], row.errors[name] = None, str(e)
                first_error = first_error or message
    if not any(v is not None and not math.isnan(v) for r in report.rows
               for v in r.scores.values()):
        raise InputError(first_error or "nothing was scored")
    return report
