"""The recovery stage: the recovery test of the study's fidelity metrics (``recovery``).

Why a good IQA model can be a poor loss: minimised over the pixels from a start that is not the
reference (noise, a blurred version, ...), does the loss bring the reference back, or does it
settle on an image it scores as perfect that is not? (Ding et al., IJCV 2021; see
:mod:`optiqa.diagnose.recovery`.) Run on one held-out image, written to
``<study>/diagnose/recovery/`` with a key that covers the metrics, options, image and code, and
redone only when one of them changes.
"""
from __future__ import annotations

from optiqa.core.hashing import stable_hash
from optiqa.core.sources import code_fingerprint
from optiqa.study.folder import read_json, write_json


def run_recovery_for_study(plan, device: str = "cpu", progress: bool = False) -> dict | None:
    """Run (or reuse) the recovery test; ``None`` when the study does not ask for it."""
    from optiqa.data.samples import load_sample
    from optiqa.diagnose.outputs import write_recovery
    from optiqa.diagnose.recovery import RecoveryOptions, run_recovery

    opts = plan.cfg.recovery
    if opts is None:
        return None
    metrics = list(plan.cfg.fidelity.metrics)
    key = stable_hash({"metrics": metrics, "image": opts.image, "size": opts.size,
                       "steps": opts.steps, "starts": opts.starts, "seed": plan.cfg.seed,
                       "code": code_fingerprint(run_recovery)})
    folder = plan.folder.recovery
    done = read_json(plan.folder.recovery_record)
    if done and done.get("key") == key:
        return done
    options = RecoveryOptions(starts=tuple(opts.starts), steps=opts.steps, seed=plan.cfg.seed,
                              device=device)
    report = run_recovery(metrics, {opts.image: load_sample(opts.image, opts.size)}, options,
                          progress=progress)
    write_recovery(report, folder, images=False)
    result = {"key": key, "image": opts.image, "figure": f"recovery_{opts.image}.png",
              "cpu_seconds": round(report.cpu_seconds, 1)}
    write_json(plan.folder.recovery_record, result)  # last: the result is complete from here on
    return result


def run_stage(ctx) -> dict | None:
    """The recovery stage as the runner calls it: the completion record, None when the study
    has no ``recovery`` block."""
    return run_recovery_for_study(ctx.plan, ctx.device, ctx.opts.progress)
