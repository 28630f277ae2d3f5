"""``optiqa tasks``: list the restoration tasks, show one, make a task's test set."""
from __future__ import annotations

from optiqa.cli.common import add_quiet, show_progress


def cmd_list(args) -> int:
    from optiqa.core.tables import format_table
    from optiqa.data.task_datasets import describe_degradation
    from optiqa.data.task_degradations import create_degradation
    from optiqa.data.tasks import TASKS

    rows = []
    for name, spec in TASKS.items():
        d = create_degradation(dict(spec.degradation), spec.scale)
        rows.append([name, f"x{spec.scale}", describe_degradation(d)])
    print(format_table(["task", "scale", "degradation"], rows))
    return 0


def cmd_show(args) -> int:
    import json

    from optiqa.data.tasks import get_task

    spec = get_task(args.task)
    print(json.dumps({"task": spec.name, "scale": spec.scale, "degradation": spec.degradation,
                      "summary": spec.summary, "reference": spec.reference}, indent=2))
    return 0


def cmd_make_testset(args) -> int:
    from optiqa.data.testsets import make_testset

    m = make_testset(args.task, args.hr, args.out, seed=args.seed, progress=show_progress(args))
    print(f"test set of task {m['task']} (x{m['scale']}, seed {m['seed']}): {len(m['images'])} "
          f"image(s) in {args.out}; {m['description']}")
    return 0


def add_parsers(sub) -> None:
    s = sub.add_parser("tasks", help="restoration tasks (degradation presets) and their test sets")
    tsub = s.add_subparsers(dest="tasks_command", required=True, metavar="ACTION")
    p = tsub.add_parser("list", help="the task presets")
    p.set_defaults(func=cmd_list)
    p = tsub.add_parser("show", help="a task's scale, degradation options and reference")
    p.add_argument("task")
    p.set_defaults(func=cmd_show)
    p = tsub.add_parser("make-testset", help="degrade an HR folder into a task's test set "
                        "(made once; rebuilt when the task, code, seed or images change)",
                        description="Writes OUT/HR, OUT/LQ, OUT/kernels (blur tasks) and "
                        "OUT/manifest.json (seed, task spec, SHA-256 of every file); "
                        "`optiqa evaluate MODEL --set NAME=OUT` then scores on it.")
    p.add_argument("task", help="task name (optiqa tasks list)")
    p.add_argument("hr", help="HR images: a folder, a set root with HR/, or builtin:samples")
    p.add_argument("out", help="output folder of the test set")
    p.add_argument("--seed", type=int, default=0)
    add_quiet(p)
    p.set_defaults(func=cmd_make_testset)
