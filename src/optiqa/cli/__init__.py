"""The ``optiqa`` command: one small module per command group; each parses, calls the library
and prints. Nothing here imports torch before the arguments are parsed.

Errors caused by input (bad files, unknown names, missing weights, bad configs) print one line
``optiqa: error: ...`` and exit with code 2; ``--debug`` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from optiqa.cli import (assess, diagnose, evaluate, judge, metrics, study, tasks, train,
                        transfer)

GROUPS = (metrics, evaluate, train, assess, transfer, study, judge, diagnose, tasks)
DESCRIPTION = ("Fidelity metrics as image quality models and as training losses: score images, "
               "benchmark metrics on IQA databases, train restoration networks with them, "
               "evaluate the results and reuse the discriminators for quality assessment; "
               "`optiqa study` runs the whole study from one config.")
EPILOG = """first steps (no downloads, CPU):
  optiqa study configs/study/quick.yaml   the built-in example study, report included
  optiqa samples demo/samples
  optiqa score -m psnr -m ssim demo/samples/distorted demo/samples/reference
  optiqa metrics                 list the metrics
  optiqa COMMAND --help          the options of a command"""


def build_parser() -> argparse.ArgumentParser:
    from optiqa import __version__

    p = argparse.ArgumentParser(prog="optiqa", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"optiqa {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.add_parsers(sub)
    return p


def _flag_of(parser: argparse.ArgumentParser, command: str | None, option: str | None):
    """The flag of ``command`` whose destination is the library parameter ``option``."""
    if not option or not command:
        return None
    for action in parser._subparsers._group_actions[0].choices[command]._actions:
        if action.dest == option and action.option_strings:
            return action.option_strings[-1]
    return None


def error_line(e, parser: argparse.ArgumentParser | None = None, command: str | None = None
               ) -> str:
    """``optiqa: error: <message>``, plus the flag that sets the parameter the error is about."""
    flag = _flag_of(parser, command, getattr(e, "option", None)) if parser else None
    return f"optiqa: error: {e}" + (f" (set with {flag})" if flag and flag not in str(e) else "")


def main(argv=None) -> int:
    # before torch loads its OpenMP runtime: idle intra-op threads sleep instead of spinning.
    # Spinning threads waste their core whenever another process needs it (a shared machine, or
    # a study's CPU workers): a 2-thread training step took 6x longer on a loaded 2-core machine
    # (docs/performance.md). Only scheduling changes, never a number; set it to override.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args, extra = parser.parse_known_args(argv)
    args.argv = argv  # the command as given (train says how to resume it)
    # argparse cannot take positionals after an option (`train CFG --study D k=v`): collect
    # trailing key.path=value overrides here; anything else is still an error
    if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-")
                                                    for e in extra):
        args.overrides = list(args.overrides) + extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from optiqa.core.errors import OptiqaError

    try:
        if getattr(args, "device", None) is not None:  # one check for every command
            from optiqa.core.device import device_name

            args.device = device_name(args.device)
        return args.func(args) or 0
    except OptiqaError as e:
        if args.debug:
            raise
        print(error_line(e, parser, args.command), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("optiqa: interrupted", file=sys.stderr)
        return 130
