"""``optiqa assess`` and ``optiqa fit``: metrics against human scores of IQA databases."""
from __future__ import annotations

from optiqa.cli.common import add_device, add_quiet, show_progress, warn


def weights_options(values, metric_names) -> dict:
    """``--weights [METRIC=]FILE`` values -> ``metric_kwargs`` of :func:`optiqa.assess.benchmark.assess`.

    A bare FILE applies to every DISTS-style metric given (``dists_<backbone>``).
    """
    from optiqa.core.errors import ConfigError

    out: dict = {}
    for v in values or []:
        name, sep, path = v.partition("=")
        targets = [name] if sep else [m for m in metric_names if m.startswith("dists_")]
        if not sep:
            path = v
        if not targets:
            raise ConfigError(f"--weights {v}: no DISTS-style metric (dists_<backbone>) given; "
                              "write METRIC=FILE")
        for t in targets:
            if t not in metric_names:
                raise ConfigError(f"--weights {v}: metric {t!r} is not among -m "
                                  f"{', '.join(metric_names)}")
            out[t] = {"weights": path}
    return out


def load_iqa_dataset(args):
    """The dataset named by ``-d`` (``--root``/``--meta`` for real databases)."""
    from optiqa.data.datasets import load_dataset

    if args.dataset.lower() == "synthetic":
        if args.root or args.meta:
            warn("note: -d synthetic is built in; --root/--meta are ignored")
        return load_dataset("synthetic", size=args.size)
    return load_dataset(args.dataset, root=args.root, meta=args.meta,
                        allow_missing=args.allow_missing)


def warn_notes(datasets) -> None:
    """Loudly, before the long part: what the user must know about the data."""
    for d in datasets:
        for note in d.notes:
            warn(f"WARNING: {note}")


def cmd_assess(args) -> int:
    from optiqa.assess.benchmark import assess
    from optiqa.assess.published import add_published, published_datasets
    from optiqa.assess.report import assessment_table, csv_rows, header_lines, store_lines
    from optiqa.core.store import ResultsStore
    from optiqa.core.tables import write_csv, write_json
    from optiqa.metrics.registry import get_spec

    metrics = list(dict.fromkeys(args.metric))
    for name in metrics:  # unknown names fail before any data is loaded
        get_spec(name)
    kwargs = weights_options(args.weights, metrics)
    dataset = load_iqa_dataset(args)
    warn_notes([dataset])
    store = ResultsStore(args.store) if args.store else None
    try:
        results = assess(metrics, dataset, device=args.device, batch_size=args.batch_size,
                         workers=args.workers, store=store, n_boot=args.bootstrap,
                         seed=args.seed, progress=show_progress(args), metric_kwargs=kwargs)
    finally:
        if store is not None:
            store.close()
    if args.compare_published:
        add_published(results)
    print("\n".join(header_lines(dataset, results, args.bootstrap)))
    print(assessment_table(results, published=args.compare_published))
    if args.compare_published:
        if dataset.name in published_datasets():
            print("** published figures: IQA-PyTorch FR benchmark; its PLCC has no logistic fit")
        else:
            print(f"no published figures for {dataset.name} (covered: "
                  f"{', '.join(published_datasets())})")
    for line in store_lines(results):
        print(line)
    if args.json:
        write_json(args.json, results)
    if args.csv:
        write_csv(args.csv, *csv_rows(results))
    return 0


def cmd_fit(args) -> int:
    from optiqa.assess.fit import backbone_of, fit_dists
    from optiqa.assess.report import fit_lines
    from optiqa.core.tables import write_json

    backbone_of(args.metric)  # fail on a wrong name before loading any data
    dataset = load_iqa_dataset(args)
    warn_notes([dataset])
    result = fit_dists(args.metric, dataset, args.out, device=args.device,
                       batch_size=args.batch_size, workers=args.workers,
                       test_fraction=args.test_fraction, seed=args.seed, steps=args.steps,
                       lr=args.lr, n_boot=args.bootstrap, progress=show_progress(args))
    print("\n".join(fit_lines(result)))
    if args.json:
        write_json(args.json, result)
    return 0


def add_iqa_data_args(s) -> None:
    """The dataset options (``s``: a parser or an argument group)."""
    s.add_argument("-d", "--dataset", required=True,
                   help="live, csiq, tid2008, tid2013, kadid10k, pipal (FR), koniq10k, spaq, "
                   "livec (NR), or synthetic (built-in known-order set, not human opinion)")
    s.add_argument("--root", help="folder with the database's images (searched recursively, "
                   "names matched case-insensitively)")
    s.add_argument("--meta", help="human scores: an IQA-PyTorch meta-info CSV or the "
                   "database's own score file (default: the CSV under --root by its standard "
                   "name, else the authors' file under --root, e.g. mos_with_names.txt, else "
                   "the CSV in $OPTIQA_META)")
    s.add_argument("--allow-missing", action="store_true",
                   help="run on the items whose images are present (results then differ from "
                   "the full database's)")
    s.add_argument("--size", type=int, default=192,
                   help="picture size of the synthetic set (default 192)")


def add_run_args(s) -> None:
    """How the work runs: device, batches, reader processes, seed, progress."""
    add_device(s)
    s.add_argument("--batch-size", type=int, default=8, help="pairs per batch (default 8)")
    s.add_argument("--workers", type=int, default=2,
                   help="processes that read the images (and score them on the CPU; default 2)")
    s.add_argument("--seed", type=int, default=0, help="seed of bootstrap and splits")
    add_quiet(s)


def add_parsers(sub) -> None:
    s = sub.add_parser("assess", help="correlate metrics with human scores of an IQA database",
                       description="SRCC, KRCC, PLCC and RMSE (after the 4-parameter logistic "
                       "fit) with bootstrap CIs over reference contents.")
    s.add_argument("-m", "--metric", action="append", required=True,
                   help="metric name (repeatable); see `optiqa metrics`")
    add_iqa_data_args(s)
    add_run_args(s)
    s.add_argument("--weights", action="append", metavar="[METRIC=]FILE",
                   help="alpha/beta file from `optiqa fit` for a dists_<backbone> metric")
    s.add_argument("--bootstrap", type=int, default=2000,
                   help="bootstrap resamples for the CIs (0: none; default 2000)")
    s.add_argument("--json", help="write the results as JSON (a list of objects)")
    s.add_argument("--csv", help="write the results as CSV")
    s.add_argument("--store", metavar="STUDY_DIR",
                   help="study folder whose results.db caches per-image scores and summaries")
    s.add_argument("--compare-published", action="store_true",
                   help="add the published SRCC/PLCC (IQA-PyTorch benchmark) where covered")
    s.set_defaults(func=cmd_assess)

    s = sub.add_parser("fit", help="learn alpha/beta of a DISTS-style metric on an IQA database",
                       description="Splits by reference content, fits with a rank-aware loss on "
                       "cached backbone features, reports held-out SRCC before and after.")
    s.add_argument("-m", "--metric", required=True, help="dists_<backbone> (or dists)")
    add_iqa_data_args(s)
    add_run_args(s)
    s.add_argument("--out", required=True, help="weights file to write (.pt)")
    s.add_argument("--test-fraction", type=float, default=0.2,
                   help="share of reference contents held out (default 0.2)")
    s.add_argument("--steps", type=int, default=300, help="optimisation steps (default 300)")
    s.add_argument("--lr", type=float, default=0.05, help="Adam learning rate (default 0.05)")
    s.add_argument("--bootstrap", type=int, default=0,
                   help="bootstrap resamples for held-out CIs (default 0: none)")
    s.add_argument("--json", help="also write the result as JSON")
    s.set_defaults(func=cmd_fit)
