"""``optiqa study`` (the whole study from one config) and ``optiqa report`` (its report)."""
from __future__ import annotations

import json

from optiqa.cli.common import add_quiet, show_progress, warn


def _stages(values):
    from optiqa.study.runner import STAGES

    if not values:
        return STAGES
    out = [s.strip() for v in values for s in v.split(",") if s.strip()]
    return tuple(s for s in STAGES if s in out) + tuple(s for s in out if s not in STAGES)


def cmd_study(args) -> int:
    import logging

    import os
    from pathlib import Path

    from optiqa.core.errors import ConfigError
    from optiqa.core.tables import format_table
    from optiqa.study.config import load_study_config
    from optiqa.study.folder import StudyFolder
    from optiqa.study.runner import StudyOptions, dry_run, run_study, step_seconds_from

    config, out = args.config, args.out
    if Path(config).is_dir():  # a study folder: continue it from its saved configuration
        folder = StudyFolder(Path(config))
        if not folder.config.is_file():
            raise ConfigError(f"{config}: not a study folder (no study.yaml) and not a study "
                              "config file", option="config")
        if out is not None and os.path.abspath(out) != os.path.abspath(config):
            raise ConfigError(f"{config} is a study folder: it is continued where it lies; "
                              f"give the study config instead of the folder to study into {out}",
                              option="out")
        config, out = folder.config, str(folder.root)
    cfg = load_study_config(config, args.overrides)
    out = out or f"studies/{cfg.name}{'-rehearsal' if args.rehearse else ''}"
    step = step_seconds_from(args.step_time) if args.step_time else None
    opts = StudyOptions(stages=_stages(args.stage), cells=args.cells, launcher=args.launcher,
                        device=args.device, progress=show_progress(args), worker=args.worker,
                        step_seconds=step, wait=not args.no_wait,
                        measure_cpu=not args.no_cpu_estimate, cpu_workers=args.cpu_workers,
                        pool=args.pool)
    if not args.quiet:
        logging.getLogger("optiqa.study").setLevel(logging.INFO)
    if args.dry_run:
        from optiqa.study.checks import check_study_config
        from optiqa.study.plan import StudyPlan

        check_study_config(cfg, check_data=False)  # a plan for another machine's data
        info = dry_run(StudyPlan(cfg, StudyFolder(out)), opts)
        for note in info["notes"]:
            warn(f"note: {note}")
        if args.json:
            print(json.dumps(info, indent=1))
            return 0
        replicates = (f" ({info['settings']} settings x {info['seeds']} seeds, train.seeds)"
                      if info["seeds"] > 1 else "")
        print(f"study {info['study']} in {info['folder']}: {info['cells']} cells{replicates}")
        print(format_table(["run", "train", "iterations", "evaluated"],
                           [[r["run"], r["train"], r["iterations"], r["evaluated"]]
                            for r in info["runs"]]))
        for r in info["runs"]:
            if r["why"]:
                print(f"{r['run']}: {r['why']}")
        design = info["design"]
        print(f"pooled groups: {len(design['groups'])}, undefined: "
              f"{len(design['undefined']) or 'none'}; contrasts: {len(design['contrasts'])} "
              f"defined, {len(design['confounded']) or 'none'} confounded")
        for line in design["undefined"]:
            print(f"  undefined group: {line}")
        for line in design["confounded"]:
            print(f"  confounded contrast: {line}")
        if info["gpu_hours"] is not None:
            print(f"remaining: {info['remaining_steps']} training steps x "
                  f"{info['step_seconds']:.3f} s x {info['gpus_per_cell']} GPU(s) = "
                  f"{info['gpu_hours']:.1f} GPU hours (training only"
                  f"{', every seed replicate counted' if info['seeds'] > 1 else ''})")
        else:
            print(f"remaining: {info['remaining_steps']} training steps; GPU hours unknown: "
                  "measure a step with `python bench/train_step.py --json STEP.json` on the "
                  "target GPU and pass --step-time STEP.json (or set launcher.step_seconds)")
            cpu = info.get("cpu_estimate")
            if cpu and cpu["cpu_hours"] is not None:
                print(f"on this machine's CPU: about {cpu['cpu_hours']:.3g} hours of training "
                      f"(steps of {cpu['measured']} of {cpu['groups']} kind(s) of run timed "
                      "here, batches over 8 at batch 1 and scaled: a rough figure)")
            for note in (cpu or {}).get("notes", []):
                warn(f"note: CPU estimate: {note}")
        return 0
    if args.rehearse:
        if args.dry_run or args.worker:
            raise ConfigError("--rehearse runs the whole study on this CPU: not with --dry-run "
                              "or --worker", option="rehearse")
        from optiqa.study.rehearsal import run_rehearsal

        summary = run_rehearsal(cfg, out, opts)
    else:
        summary = run_study(cfg, out, opts)
    report = summary["stages"].get("report", {}).get("result", {})
    for stage, info in summary["stages"].items():
        warn(f"{stage}: done in {info['seconds']:.0f} s")
    if report:
        print(f"report: {report.get('html')}")
    return 0


def cmd_report(args) -> int:
    from optiqa.stats.rows import Analysis
    from optiqa.study.analysis import saved_key
    from optiqa.study.folder import read_json
    from optiqa.study.plan import load_plan
    from optiqa.study.report import write_report

    plan = load_plan(args.study_dir)
    before = saved_key(plan)
    paths = write_report(plan)  # analyses again first when results or votes changed
    after = saved_key(plan)
    if after and after != before:
        summary = Analysis.from_json(read_json(plan.folder.analysis)).summary
        warn(f"analysis: {'redone' if before else 'done'} from the current results and "
             f"{summary.human_votes if summary else 0} human vote(s)")
    print(f"report: {paths['html']}")
    return 0


def add_parsers(sub) -> None:
    s = sub.add_parser("study", help="run a whole study from one config: assess, train, "
                       "evaluate, transfer, analyze, report",
                       description="Expands the config into cells (one training run each) and "
                       "runs every stage into the study folder; rerun the same command to "
                       "continue after an interruption (finished work is never redone).")
    s.add_argument("config", help="study YAML (see configs/study/), or a study folder to "
                   "continue from its saved study.yaml (wherever the folder now lies)")
    s.add_argument("overrides", nargs="*", metavar="key.path=value",
                   help="override config values, e.g. adversarial.weights=[0.01]")
    s.add_argument("--out", metavar="DIR", help="study folder (default studies/<name>)")
    s.add_argument("--stage", action="append", metavar="STAGE",
                   help="only these stages (repeatable or comma-separated): assess, train, "
                   "evaluate, transfer, analyze, report")
    s.add_argument("--cells", metavar="GLOB", help="only the cells whose name matches")
    s.add_argument("--rehearse", action="store_true",
                   help="run every cell, evaluator, assessment, transfer and report section "
                   "shrunk on this CPU (tiny generator, a few iterations and images; missing "
                   "data and weights replaced, each listed in the report); default folder "
                   "studies/<name>-rehearsal")
    s.add_argument("--dry-run", action="store_true",
                   help="list the cells, what is done, and the estimated GPU hours")
    s.add_argument("--step-time", metavar="FILE",
                   help="bench/train_step.py --json output: seconds per step for --dry-run")
    s.add_argument("--launcher", choices=["local", "slurm"],
                   help="where training runs (default: the config's launcher.type)")
    s.add_argument("--no-wait", action="store_true", help="slurm: submit and return")
    s.add_argument("--device", default="auto",
                   help="auto (CUDA when present, else CPU), cpu, cuda, cuda:N")
    s.add_argument("--cpu-workers", type=int, metavar="N",
                   help="on the CPU: train and evaluate the cells, and run the transfer "
                   "experiments and the recovery test, in N processes of one torch thread "
                   "each (default: one per core; results do not depend on N)")
    s.add_argument("--no-cpu-estimate", action="store_true",
                   help="--dry-run without a step time: do not time training steps on this "
                   "CPU for an estimate")
    s.add_argument("--json", action="store_true", help="--dry-run: print JSON")
    s.add_argument("--worker", action="store_true", help=argparse_suppress())
    s.add_argument("--pool", action="store_true", help=argparse_suppress())
    add_quiet(s)
    s.set_defaults(func=cmd_study)

    s = sub.add_parser("report", help="write the report of a study folder",
                       description="report.html (self-contained), report.md and CSV tables "
                       "from the study's results; the analysis is redone first when the "
                       "results, the human votes or the configuration changed since it was "
                       "written.")
    s.add_argument("study_dir", help="study folder (holds study.yaml)")
    s.set_defaults(func=cmd_report)


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS
