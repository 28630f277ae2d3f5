"""``optiqa judge serve`` (pairwise-comparison web app) and ``optiqa judge fit`` (human scores)."""
from __future__ import annotations

import os

from optiqa.cli.common import warn

TOKEN_ENV = "OPTIQA_JUDGE_TOKEN"
GENERATE = object()  # `--token` without a value: make one


def _token(args) -> str | None:
    import secrets

    if args.token is GENERATE:
        return secrets.token_urlsafe(18)
    return args.token or os.environ.get(TOKEN_ENV) or None


def cmd_serve(args) -> int:
    from optiqa.core.errors import ConfigError
    import sys

    from optiqa.judge.app import JudgeServer, log_requests, quiet_request_log
    from optiqa.judge.schedule import ScheduleOptions
    from optiqa.judge.service import JudgeOptions

    try:
        import flask  # noqa: F401  (only the server needs it)
    except ImportError:
        raise ConfigError("the judging server needs Flask: pip install 'optiqa[judge]'") from None
    options = JudgeOptions(
        crop_size=args.crop_size, crops_per_image=args.crops, trials_per_rater=args.target,
        question=args.question, vote_rate=args.vote_rate, vote_burst=args.vote_burst,
        schedule=ScheduleOptions(repeat_every=args.repeat_every, max_repeats=args.max_repeats,
                                 seed=args.seed))
    try:
        server = JudgeServer(args.study_dir, host=args.host, port=args.port, token=_token(args),
                             options=options)
    except ConfigError as e:
        if e.option == "token":
            raise ConfigError(f"{e} (set one with --token or {TOKEN_ENV})") from None
        raise
    except OSError as e:
        raise ConfigError(f"cannot listen on {args.host}:{args.port}: {e.strerror}") from None
    quiet_request_log(args.verbose)
    log_requests(sys.stderr, enabled=not args.quiet)
    service = server.service
    warn(f"judging {len(service.images.runs)} runs on {len(service.crops)} images "
         f"({len(service.crops_by_pair)} pairs); votes go to {service.store.path}")
    print(f"open {server.page_url}", flush=True)
    warn("Ctrl-C to stop (every vote is stored as it arrives)"
         + ("" if args.quiet else "; requests are logged below"))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        warn("stopped; every answered vote is stored")
    return 0


def cmd_fit(args) -> int:
    from optiqa.core.tables import format_table, write_json
    from optiqa.judge import fit_study

    result = fit_study(args.study_dir, n_boot=args.bootstrap, seed=args.seed, alpha=args.alpha)
    if args.json:
        write_json(args.json, result.to_dict())
    if not result.has_votes:
        print(f"{args.study_dir}: {result.message}")
        return 0
    level = round(result.ci_level * 100)
    print(format_table(
        ["rank", "run", "label", "score", f"{level}% CI", "votes", "wins"],
        [[r.rank, r.run, r.label, r.score,
          "-" if r.ci_low is None else f"[{r.ci_low:.2f}, {r.ci_high:.2f}]", r.votes, r.wins]
         for r in sorted(result.runs, key=lambda r: (r.rank is None, r.rank or 0))],
        digits=3, title=f"human scores: Bradley-Terry, {result.message}, "
                        f"{result.n_boot} bootstrap resamples of {result.resampled} "
                        f"({result.n_raters} raters, {result.n_images} images)"))
    print(f"scale: {result.scale}")
    print()
    print(format_table(
        ["rater", "votes", "repeats", "consistency", "agreement", "median ms"],
        [[r.rater, r.votes, r.repeats, r.consistency, r.agreement, r.median_response_ms]
         for r in result.raters], digits=2,
        title="raters: consistency = same choice on a repeated pair; agreement = with the "
              "other raters' scores"))
    if result.consistency is not None:
        print(f"overall consistency: {result.consistency:.2f} over "
              f"{sum(r.repeats for r in result.raters)} repeats")
    if args.pairs:
        print()
        print(format_table(["run a", "run b", "votes", "a wins", "share a"],
                           [[p.run_a, p.run_b, p.votes, p.wins_a, p.wins_a / p.votes]
                            for p in result.pairs], digits=2, title="votes per pair"))
    else:
        counts = [p.votes for p in result.pairs]
        print(f"votes per pair: {min(counts)}-{max(counts)} over {len(counts)} pairs "
              f"(--pairs lists them)")
    for note in result.notes:
        warn(f"note: {note}")
    return 0


def add_parsers(sub) -> None:
    s = sub.add_parser("judge", help="collect human pairwise judgments of a study's images "
                                     "and fit Bradley-Terry scores")
    jsub = s.add_subparsers(dest="action", required=True, metavar="ACTION")

    p = jsub.add_parser("serve", help="the pairwise-comparison web app for raters")
    p.add_argument("study_dir", help="study folder with images/manifest.json")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; any other needs --token)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    p.add_argument("--token", nargs="?", const=GENERATE, default=None,
                   help=f"require this token (>= 12 characters; default ${TOKEN_ENV}); "
                        f"without a value (put it last), a random one is made and printed "
                        f"in the link")
    p.add_argument("--crop-size", type=int, default=96,
                   help="side of the judged crops in pixels (default 96)")
    p.add_argument("--crops", type=int, default=3, help="crops per image (default 3)")
    p.add_argument("--target", type=int, default=60,
                   help="votes per rater shown as the goal (default 60)")
    p.add_argument("--question", default="Which image looks better?",
                   help="the question above the pair")
    p.add_argument("--repeat-every", type=int, default=10,
                   help="every N-th trial repeats an earlier one (consistency; default 10)")
    p.add_argument("--max-repeats", type=int, default=6, help="repeats per rater (default 6)")
    p.add_argument("--vote-rate", type=float, default=5.0,
                   help="votes per second a rater may sustain (default 5)")
    p.add_argument("--vote-burst", type=int, default=20,
                   help="votes a rater may send at once (default 20)")
    p.add_argument("--seed", type=int, default=0, help="seed of the schedule (default 0)")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="do not log each request on stderr")
    p.set_defaults(func=cmd_serve)

    f = jsub.add_parser("fit", help="Bradley-Terry scores of the runs from the votes")
    f.add_argument("study_dir", help="study folder with judgments.db")
    f.add_argument("--bootstrap", type=int, default=2000,
                   help="bootstrap resamples for the 95%% intervals (default 2000)")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--alpha", type=float, default=0.01,
                   help="regularisation of the Bradley-Terry fit (default 0.01)")
    f.add_argument("--pairs", action="store_true", help="list the votes of every pair")
    f.add_argument("--json", help="also write the full result as JSON")
    f.set_defaults(func=cmd_fit)
