"""The ``optiqa`` command. Thin: parses arguments, calls the library, prints.

Errors caused by input (bad files, unknown names, missing weights, bad configs) print one line
``optiqa: error: ...`` and exit with code 2; ``--debug`` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys

from optiqa.errors import OptiqaError

log = logging.getLogger("optiqa")


# --------------------------------------------------------------------------------------------
# metrics / score / weights / samples
# --------------------------------------------------------------------------------------------
def cmd_metrics(args) -> int:
    from optiqa.metrics import list_metrics, metric_available_offline
    from optiqa.tables import format_table

    rows = []
    for name, info in list_metrics().items():
        rows.append({
            "name": name, "orientation": info.orientation, "lower_better": info.lower_better,
            "differentiable": info.differentiable, "range": list(info.score_range),
            "colour": info.colour, "min_size": info.min_size, "family": info.family,
            "needs_weights": info.backbone, "available_offline": metric_available_offline(name),
            "reference": info.reference,
        })
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(format_table(
        ["metric", "orientation", "differentiable", "range", "input", "min size",
         "offline"],
        [[r["name"], r["orientation"], r["differentiable"],
          f"[{r['range'][0]:g}, {r['range'][1]:g}]", r["colour"], r["min_size"],
          "yes" if r["available_offline"] else f"no (needs {r['needs_weights']} weights)"]
         for r in rows]))
    return 0


def cmd_score(args) -> int:
    from optiqa.scoring import score_files
    from optiqa.tables import format_table, write_csv, write_json

    results = score_files(args.metric, args.distorted, args.reference, device=args.device,
                          progress=not args.quiet)
    names = list(dict.fromkeys(args.metric))
    headers = ["distorted", "reference"] + names
    rows = [[r.distorted.name, r.reference.name] + [r.scores[n] for n in names] for r in results]
    if len(rows) > 1:
        means = [sum(r.scores[n] for r in results) / len(results) for n in names]
        rows_shown = rows + [["mean", f"({len(rows)} pairs)"] + means]
    else:
        rows_shown = rows
    print(format_table(headers, rows_shown))
    from optiqa.metrics import list_metrics

    infos = list_metrics()
    print("orientation: " + "; ".join(f"{n} {infos[n].orientation}" for n in names))
    if args.csv:
        write_csv(args.csv, headers, rows)
    if args.json:
        write_json(args.json, [{"distorted": str(r.distorted), "reference": str(r.reference),
                                **r.scores} for r in results])
    return 0


def cmd_weights(args) -> int:
    from optiqa import backbones
    from optiqa.tables import format_table

    if args.action == "list":
        print(format_table(["backbone", "title", "pretrained weights", "on this machine"],
                           [[n, backbones.spec(n).title, backbones.weights_description(n),
                             backbones.weights_available(n)] for n in backbones.names()]))
        return 0
    for name in args.names:
        path = backbones.fetch(name)
        print(f"{name}: {path}")
    return 0


def cmd_samples(args) -> int:
    from optiqa.data.samples import write_sample_pairs

    ref_dir, dist_dir, n = write_sample_pairs(args.folder, size=args.size)
    print(f"wrote {n} distorted images to {dist_dir} and their references to {ref_dir}")
    return 0


# --------------------------------------------------------------------------------------------
# evaluate / restore
# --------------------------------------------------------------------------------------------
def _load_generator_from_args(args):
    from optiqa.nets.generators import parse_arch
    from optiqa.train.inference import load_generator

    arch = parse_arch(args.arch) if args.arch else None
    loaded = load_generator(args.source, arch=arch, device=args.device, key=args.weights,
                            scale=args.scale)
    print(f"model: {loaded.describe()}", file=sys.stderr)
    return loaded


def cmd_evaluate(args) -> int:
    from optiqa.tables import write_json
    from optiqa.train.evaluate import (DEFAULT_METRICS, evaluate_sets, format_results,
                                       parse_set_args)

    sets = parse_set_args(args.set)
    loaded = _load_generator_from_args(args)
    result = evaluate_sets(loaded, sets, list(DEFAULT_METRICS) + (args.metric or []),
                           device=args.device, tile=args.tile, overlap=args.tile_overlap,
                           save_images=args.save_images, progress=not args.quiet)
    print(format_results(result, per_image=not args.means_only))
    if args.json:
        write_json(args.json, result.to_dict())
    if args.save_images:
        print(f"images written under {args.save_images}/<set>/")
    return 0


def cmd_restore(args) -> int:
    from optiqa.train.inference import restore_files

    loaded = _load_generator_from_args(args)
    written = restore_files(loaded, args.input, args.output, device=args.device, tile=args.tile,
                            overlap=args.tile_overlap, progress=not args.quiet)
    print(f"wrote {len(written)} image(s)" + (f" to {written[0]}" if len(written) == 1 else
                                              f" under {args.output}"))
    return 0


def _add_generator_args(s) -> None:
    s.add_argument("--arch", help="generator TYPE[:key=value,...] when the checkpoint does not "
                   "name it, e.g. swinir, rrdbnet, srresnet:num_feat=32,num_block=4")
    s.add_argument("--weights", choices=["auto", "params_ema", "params"], default="auto",
                   help="which weights of the checkpoint (auto: params_ema when present)")
    s.add_argument("--scale", type=int, default=4, help="scale of the 'bicubic' baseline")
    s.add_argument("--device", default="cpu")
    s.add_argument("--tile", type=int, help="restore in LR tiles of this size (large images)")
    s.add_argument("--tile-overlap", type=int, default=32, help="tile overlap in LR pixels")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


# --------------------------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# assess / fit
# --------------------------------------------------------------------------------------------
def _load_iqa_dataset(args):
    from optiqa.data.iqa import load_dataset

    if args.dataset.lower() == "synthetic":
        if args.root or args.meta:
            print("note: -d synthetic is built in; --root/--meta are ignored", file=sys.stderr)
        return load_dataset("synthetic", size=args.size)
    return load_dataset(args.dataset, root=args.root, meta=args.meta,
                        allow_missing=args.allow_missing)


def cmd_assess(args) -> int:
    from optiqa.assess.benchmark import assess, weights_options
    from optiqa.assess.published import add_published, published_datasets
    from optiqa.assess.report import (assessment_table, csv_rows, header_lines, store_lines)
    from optiqa.study.store import ResultsStore
    from optiqa.tables import write_csv, write_json

    from optiqa.metrics.registry import get_spec

    metrics = list(dict.fromkeys(args.metric))
    for name in metrics:  # unknown names fail before any data is loaded
        get_spec(name)
    kwargs = weights_options(args.weights, metrics)
    dataset = _load_iqa_dataset(args)
    for note in dataset.notes:  # loudly, before the long part
        print(f"WARNING: {note}", file=sys.stderr)
    store = ResultsStore(args.store) if args.store else None
    try:
        results = assess(metrics, dataset, device=args.device, batch_size=args.batch_size,
                         workers=args.workers, store=store, n_boot=args.bootstrap,
                         seed=args.seed, progress=not args.quiet, metric_kwargs=kwargs)
    finally:
        if store is not None:
            store.close()
    if args.compare_published:
        add_published(results)
    print("\n".join(header_lines(dataset, results, args.bootstrap)))
    print(assessment_table(results, published=args.compare_published))
    if args.compare_published:
        if dataset.name in published_datasets():
            print("* published figures: IQA-PyTorch FR benchmark; its PLCC has no logistic fit")
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
    from optiqa.tables import write_json

    backbone_of(args.metric)  # fail on a wrong name before loading any data
    dataset = _load_iqa_dataset(args)
    for note in dataset.notes:
        print(f"WARNING: {note}", file=sys.stderr)
    result = fit_dists(args.metric, dataset, args.out, device=args.device,
                       batch_size=args.batch_size, workers=args.workers,
                       test_fraction=args.test_fraction, seed=args.seed, steps=args.steps,
                       lr=args.lr, n_boot=args.bootstrap, progress=not args.quiet)
    print("\n".join(fit_lines(result)))
    if args.json:
        write_json(args.json, result)
    return 0


def cmd_transfer(args) -> int:
    from optiqa.study.store import ResultsStore
    from optiqa.tables import write_json
    from optiqa.transfer.report import (check_zero_shot_args, load_cross, result_lines,
                                        transfer_options, zero_shot_lines)

    # names and values are checked before any data is loaded
    opts = check_zero_shot_args(args) if args.zero_shot else transfer_options(args)
    dataset = _load_iqa_dataset(args)
    cross = load_cross(args.cross, size=args.size)
    for note in [n for d in (dataset, *cross) for n in d.notes]:
        print(f"WARNING: {note}", file=sys.stderr)
    store = ResultsStore(args.store) if args.store else None
    try:
        if args.zero_shot:
            from optiqa.transfer.zeroshot import run_zero_shot

            result = run_zero_shot(args.zero_shot, dataset, crop=args.crop, grid=args.grid,
                                   device=args.device, n_boot=args.bootstrap, seed=args.seed,
                                   workers=args.workers, store=store, force=args.force,
                                   progress=not args.quiet)
            lines = zero_shot_lines(result)
        else:
            from optiqa.transfer.experiment import run_transfer

            result = run_transfer(opts, dataset, cross, store=store, force=args.force,
                                  progress=not args.quiet)
            lines = result_lines(result)
    finally:
        if store is not None:
            store.close()
    print("\n".join(lines))
    if args.json:
        write_json(args.json, result)
    return 0


def _add_iqa_data_args(s) -> None:
    s.add_argument("-d", "--dataset", required=True,
                   help="live, csiq, tid2008, tid2013, kadid10k, pipal (FR), koniq10k, spaq, "
                   "livec (NR), or synthetic (built-in known-order set, not human opinion)")
    s.add_argument("--root", help="folder with the database's images (searched recursively, "
                   "names matched case-insensitively)")
    s.add_argument("--meta", help="meta-info CSV (default: found under --root by its standard "
                   "name, or in $OPTIQA_META)")
    s.add_argument("--allow-missing", action="store_true",
                   help="run on the items whose images are present (results then differ from "
                   "the full database's)")
    s.add_argument("--size", type=int, default=192,
                   help="picture size of the synthetic set (default 192)")
    s.add_argument("--device", default="cpu")
    s.add_argument("--batch-size", type=int, default=8, help="pairs per batch (default 8)")
    s.add_argument("--workers", type=int, default=2,
                   help="processes that read the images (and score them on the CPU; default 2)")
    s.add_argument("--seed", type=int, default=0, help="seed of bootstrap and splits")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


# --------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="optiqa", description=__doc__.splitlines()[0])
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("metrics", help="list the metrics with orientation and availability")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    s.set_defaults(func=cmd_metrics)

    s = sub.add_parser("score", help="score a distorted image (or folder) against its reference")
    s.add_argument("distorted", help="distorted image file or folder")
    s.add_argument("reference", help="reference image file or folder")
    s.add_argument("-m", "--metric", action="append", required=True,
                   help="metric name (repeatable); see `optiqa metrics`")
    s.add_argument("--device", default="cpu")
    s.add_argument("--csv", help="also write the scores as CSV")
    s.add_argument("--json", help="also write the scores as JSON")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_score)

    s = sub.add_parser("weights", help="list or download pretrained backbone weights")
    wsub = s.add_subparsers(dest="action", required=True)
    wsub.add_parser("list", help="where each backbone's weights come from, and whether present")
    f = wsub.add_parser("fetch", help="download weights into the cache (needs internet)")
    f.add_argument("names", nargs="+", help="backbone names")
    s.set_defaults(func=cmd_weights)

    s = sub.add_parser("samples", help="write the built-in sample photos and distorted versions")
    s.add_argument("folder", help="output folder (gets reference/ and distorted/)")
    s.add_argument("--size", type=int, default=256, help="square crop size (default 256)")
    s.set_defaults(func=cmd_samples)

    s = sub.add_parser("evaluate", help="score a trained generator on SR test sets",
                       description="PSNR/SSIM on BT.601 Y with a border crop = scale, plus any "
                       "registered metric; per image and mean per set.")
    s.add_argument("source", help="run folder (newest checkpoint), checkpoint file, or "
                   "'bicubic' for the baseline")
    s.add_argument("--set", action="append", required=True, metavar="NAME=PATH",
                   help="test set: a folder with HR/ (and LR_bicubic/X<scale>/) or of HR images; "
                   "repeatable")
    s.add_argument("-m", "--metric", action="append",
                   help="extra metric (repeatable); psnr_y and ssim_y are always computed")
    s.add_argument("--save-images", metavar="DIR", help="write outputs to DIR/<set>/<image>.png")
    s.add_argument("--json", help="also write the results as JSON")
    s.add_argument("--means-only", action="store_true", help="print only the mean rows")
    _add_generator_args(s)
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("restore", help="run a trained generator on an image or a folder")
    s.add_argument("source", help="run folder, checkpoint file, or 'bicubic'")
    s.add_argument("input", help="image file or folder (searched recursively)")
    s.add_argument("output", help="output file, or folder (PNG files, same relative names)")
    _add_generator_args(s)
    s.set_defaults(func=cmd_restore)

    s = sub.add_parser("train", help="train a restoration network from a YAML config",
                       description="Iteration-based training (pixel warm-up, then pixel + "
                       "fidelity + adversarial terms) into <study>/runs/<name>/; under torchrun "
                       "on several GPUs with DDP.")
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
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("assess", help="correlate metrics with human scores of an IQA database",
                       description="SRCC, KRCC, PLCC and RMSE (after the 4-parameter logistic "
                       "fit) with bootstrap CIs over reference contents.")
    s.add_argument("-m", "--metric", action="append", required=True,
                   help="metric name (repeatable); see `optiqa metrics`")
    _add_iqa_data_args(s)
    s.add_argument("--weights", action="append", metavar="[METRIC=]FILE",
                   help="alpha/beta file from `optiqa fit` for a dists_<backbone> metric")
    s.add_argument("--bootstrap", type=int, default=1000,
                   help="bootstrap resamples for the CIs (0: none; default 1000)")
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
    _add_iqa_data_args(s)
    s.add_argument("--out", required=True, help="weights file to write (.pt)")
    s.add_argument("--test-fraction", type=float, default=0.2,
                   help="share of reference contents held out (default 0.2)")
    s.add_argument("--steps", type=int, default=300, help="optimisation steps (default 300)")
    s.add_argument("--lr", type=float, default=0.05, help="Adam learning rate (default 0.05)")
    s.add_argument("--bootstrap", type=int, default=0,
                   help="bootstrap resamples for held-out CIs (default 0: none)")
    s.add_argument("--json", help="also write the result as JSON")
    s.set_defaults(func=cmd_fit)

    s = sub.add_parser("transfer", help="train IQA models on a backbone (random, ImageNet or "
                       "discriminator init), or score with a discriminator zero-shot",
                       description="Repeated content splits (train/validation/test), early "
                       "stopping on validation only, mean/std/median SRCC and PLCC over repeats; "
                       "or --zero-shot RUN_DIR: the discriminator's logit as a quality score.")
    s.add_argument("--backbone", help="backbone name (see `optiqa weights list`)")
    s.add_argument("--init", help="random | imagenet | gan:<run-dir-or-checkpoint>")
    s.add_argument("--kind", choices=["nr", "fr"], help="no-reference or full-reference model")
    s.add_argument("--mode", choices=["frozen", "finetune"],
                   help="frozen: train the head on cached features (default); finetune: all")
    s.add_argument("--zero-shot", metavar="RUN_DIR",
                   help="score with the trained discriminator of RUN_DIR (or a net_d checkpoint)")
    _add_iqa_data_args(s)
    s.add_argument("--cross", action="append", metavar="NAME[=ROOT]",
                   help="also test on this dataset in full (cross-database; repeatable)")
    s.add_argument("--repeats", type=int, default=10, help="repeats with different seeds "
                   "(default 10)")
    s.add_argument("--test-fraction", type=float, default=0.2,
                   help="share of contents held out for testing (default 0.2; 0 with --cross)")
    s.add_argument("--val-fraction", type=float, default=0.2,
                   help="share of the remaining contents used for early stopping (default 0.2)")
    s.add_argument("--head", choices=["linear", "mlp"],
                   help="head (default: linear when frozen, mlp when fine-tuned)")
    s.add_argument("--epochs", type=int, default=30, help="most epochs per repeat (default 30)")
    s.add_argument("--patience", type=int, default=5,
                   help="stop after this many epochs without validation gain (default 5)")
    s.add_argument("--train-batch-size", type=int, default=32,
                   help="items per optimisation step (default 32)")
    s.add_argument("--lr", type=float, default=1e-3, help="head learning rate (default 1e-3)")
    s.add_argument("--backbone-lr", type=float, default=2e-5,
                   help="backbone learning rate when fine-tuning (default 2e-5)")
    s.add_argument("--crop", type=int, help="fine-tuning crop (default 224) / zero-shot crop "
                   "(default the run's gt_size)")
    s.add_argument("--grid", type=int, default=3, help="zero-shot: grid x grid crops (default 3)")
    s.add_argument("--bootstrap", type=int, default=1000,
                   help="zero-shot: bootstrap resamples for CIs (default 1000)")
    s.add_argument("--json", help="also write the result as JSON")
    s.add_argument("--store", metavar="STUDY_DIR", help="study folder: results go into its "
                   "results.db; a complete result is reused")
    s.add_argument("--force", action="store_true", help="recompute even if the store has it")
    s.set_defaults(func=cmd_transfer)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # argparse cannot take positionals after an option (`train CFG --study D k=v`): collect
    # trailing key.path=value overrides here; anything else is still an error
    if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-")
                                                    for e in extra):
        args.overrides = list(args.overrides) + extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args) or 0
    except OptiqaError as e:
        if args.debug:
            raise
        print(f"optiqa: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("optiqa: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
