"""``optiqa train``: one training run from a YAML config."""
from __future__ import annotations

import shlex

from optiqa.cli.common import add_device, add_quiet, show_progress, warn


def _command(argv, resume: bool) -> str:
    """The ``optiqa train ...`` command line the user gave, with or without ``--resume``."""
    args = [a for a in argv if a != "--resume"] + (["--resume"] if resume else [])
    return "optiqa " + shlex.join(args)


def cmd_train(args) -> int:
    import os

    from optiqa.train.interrupt import EXIT_STATUS, TrainingInterrupted
    from optiqa.train.run import RunNotFound, run_training

    argv = getattr(args, "argv", None) or ["train", args.config, *args.overrides]
    launcher = " (under torchrun, with the same torchrun options)" if int(
        os.environ.get("WORLD_SIZE", "1")) > 1 else ""
    resume_hint = f"resume with: {_command(argv, resume=True)}{launcher}"
    try:
        summary = run_training(args.config, args.overrides, study=args.study,
                               resume=args.resume, device=args.device,
                               progress=show_progress(args), quiet=args.quiet, run_dir=args.run_dir,
                               resume_hint=resume_hint)
    except RunNotFound as e:
        warn(f"optiqa: error: {e.root}: there is no run to resume; start it with: "
             f"{_command(argv, resume=False)}")
        return 2
    except TrainingInterrupted:  # the training log has said where it stopped and how to resume
        return EXIT_STATUS
    if summary.get("run"):
        if summary.get("complete"):
            print(f"run {summary['run']}: complete at iteration {summary['iteration']}; "
                  "nothing to train")
            return 0
        val = ", ".join(f"{k} {v:.4f}" for k, v in summary.get("val", {}).items())
        print(f"run {summary['run']}: iteration {summary['iteration']}"
              + (f"; validation {val}" if val else "")
              + (f"; {summary['nan_skips']} skipped steps" if summary["nan_skips"] else ""))
    return 0


DESCRIPTION = ("Iteration-based training (an optional L1-only stage, then pixel + fidelity + "
               "adversarial terms) into <study>/runs/<name>/; under torchrun on several GPUs "
               "with DDP. Ctrl-C (or SIGTERM) stops after the current iteration with a "
               "checkpoint (exit status 130); a second one exits at once.")


def network_help() -> str:
    """The generator types, read from their registry when help is shown (so that every
    registered type, a user's included, is listed); the registry is data and imports no torch."""
    from optiqa.nets.generator_specs import REGISTRY

    gens = dict(REGISTRY.items())
    trainable = ", ".join(n for n, s in gens.items() if s.trainable)
    baselines = ", ".join(n for n, s in gens.items() if not s.trainable)
    text = f"Generators (network_g.type): {trainable}."
    if baselines:
        text += f" Not trainable (baselines for `optiqa evaluate`): {baselines}."
    return (text + " Discriminators (network_d.type): patchgan, unet, vgg, backbone, and "
            "<backbone>_image / <backbone>_patch for every backbone of `optiqa weights list`. "
            "`optiqa metrics` lists the metrics for train.fidelity_opt.")


def add_parsers(sub) -> None:
    s = sub.add_parser("train", help="train a restoration network from a YAML config",
                       description=DESCRIPTION)
    base_help = s.format_help

    def format_help() -> str:  # the lists are built only when help is printed
        s.description = f"{DESCRIPTION} {network_help()}"
        return base_help()

    s.format_help = format_help
    s.add_argument("config", help="YAML config (see configs/train/)")
    s.add_argument("overrides", nargs="*", metavar="key.path=value",
                   help="override config values, e.g. train.total_iter=100 (YAML values)")
    s.add_argument("--resume", action="store_true",
                   help="continue an existing run from its newest complete checkpoint (an "
                   "error if the run does not exist); changed values apply only if training "
                   "continues, and total_iter cannot go below the run's iteration")
    s.add_argument("--study", default="studies/default",
                   help="study folder; the run goes to STUDY/runs/<name> (default "
                   "studies/default)")
    s.add_argument("--run-dir", help="write the run here instead of STUDY/runs/<name>")
    add_device(s)
    add_quiet(s, help="no progress bar; the console shows only warnings and the final line "
              "(log.txt keeps everything)")
    s.set_defaults(func=cmd_train)
