"""``optiqa train``: one training run from a YAML config."""
from __future__ import annotations

from optiqa.cli.common import add_quiet


def cmd_train(args) -> int:
    from optiqa.train.run import run_training

    summary = run_training(args.config, args.overrides, study=args.study, resume=args.resume,
                           device=args.device, progress=not args.quiet, run_dir=args.run_dir)
    if summary.get("run"):
        val = ", ".join(f"{k} {v:.4f}" for k, v in summary.get("val", {}).items())
        print(f"run {summary['run']}: iteration {summary['iteration']}"
              + (f"; validation {val}" if val else "")
              + (f"; {summary['nan_skips']} skipped steps" if summary["nan_skips"] else ""))
    return 0


def add_parsers(sub) -> None:
    s = sub.add_parser("train", help="train a restoration network from a YAML config",
                       description="Iteration-based training (an optional L1-only stage, then "
                       "pixel + fidelity + adversarial terms) into <study>/runs/<name>/; under "
                       "torchrun on several GPUs with DDP.")
    s.add_argument("config", help="YAML config (see configs/train/)")
    s.add_argument("overrides", nargs="*", metavar="key.path=value",
                   help="override config values, e.g. train.total_iter=100 (YAML values)")
    s.add_argument("--resume", action="store_true",
                   help="continue from the run's newest complete checkpoint")
    s.add_argument("--study", default="studies/default",
                   help="study folder; the run goes to STUDY/runs/<name> (default "
                   "studies/default)")
    s.add_argument("--run-dir", help="write the run here instead of STUDY/runs/<name>")
    s.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, ...")
    add_quiet(s)
    s.set_defaults(func=cmd_train)
