"""``optiqa evaluate`` and ``optiqa restore``: run a trained generator."""
from __future__ import annotations

from optiqa.cli.common import add_device, add_quiet, show_progress, warn


def parse_set_args(items) -> dict[str, str]:
    """``NAME=PATH`` (or a bare ``PATH``, named after its folder) -> ``{name: path}``."""
    from pathlib import Path

    from optiqa.core.errors import ConfigError

    sets = {}
    for item in items:
        name, eq, path = item.partition("=")
        if not eq:
            name, path = Path(item).name, item
        if not name or not path:
            raise ConfigError(f"--set {item!r}: expected NAME=PATH")
        if name in sets:
            raise ConfigError(f"--set: the name {name!r} is given twice")
        sets[name] = path
    return sets


def _load_generator_from_args(args):
    from optiqa.nets.generators import parse_arch
    from optiqa.restore.generator import load_generator

    arch = parse_arch(args.arch) if args.arch else None
    return load_generator(args.source, arch=arch, device=args.device, key=args.weights,
                          scale=args.scale)


def circular_metrics(args, metrics: list[str]) -> dict[str, str]:
    """``{metric: reason}`` of ``metrics`` that may not judge a model trained with
    ``--training-loss`` (and a discriminator on ``--discriminator-backbone``): the circularity
    rule, family grouping on, as a study applies it. None given: every metric judges."""
    from optiqa.core.errors import ConfigError
    from optiqa.evaluators import excluded_judges
    from optiqa.metrics.registry import REGISTRY

    if not args.training_loss:
        if args.discriminator_backbone:
            raise ConfigError("--discriminator-backbone goes with --training-loss")
        return {}
    for loss in args.training_loss:
        if loss not in REGISTRY:
            raise ConfigError(f"--training-loss {loss!r}: not a metric (optiqa metrics list)")
    if args.discriminator_backbone:
        from optiqa.models.backbone_specs import names

        if args.discriminator_backbone not in names(internal=True):
            raise ConfigError(f"--discriminator-backbone {args.discriminator_backbone!r}: not "
                              f"a backbone ({', '.join(names())})")
    skip = excluded_judges(metrics, args.training_loss, exclude_family=True,
                           discriminator_features=args.discriminator_backbone)
    if metrics and all(m in skip for m in metrics):
        raise ConfigError(f"every metric ({', '.join(metrics)}) is circular for training loss "
                          f"{', '.join(args.training_loss)}: nothing left to compute")
    return skip


def cmd_evaluate(args) -> int:
    from optiqa.core.errors import ConfigError
    from optiqa.core.tables import write_json
    from optiqa.restore.scoring import (DEFAULT_METRICS, evaluate_images, evaluate_sets,
                                       format_results)

    skip: dict[str, str] = {}
    if args.images is not None:
        if args.source is not None or args.set or args.save_images or args.task:
            raise ConfigError("--images scores stored images: give no model, --set, --task or "
                              "--save-images")
        metrics = None if not args.metric and args.hr else (
            list(DEFAULT_METRICS if args.hr else []) + (args.metric or []))
        skip = circular_metrics(args, list(DEFAULT_METRICS) if metrics is None else metrics)
        if skip:
            metrics = [m for m in (DEFAULT_METRICS if metrics is None else metrics)
                       if m not in skip]
        result = evaluate_images(args.images, args.hr, metrics, device=args.device,
                                 crop=args.crop_border or 0, scale=args.scale,
                                 protocol=args.protocol, progress=show_progress(args),
                                 strict=args.strict)
    else:
        if args.source is None or not args.set:
            raise ConfigError("give a model (run folder, checkpoint or 'bicubic') and at least "
                              "one --set, or --images DIR for stored images")
        if args.hr is not None or args.crop_border is not None:
            raise ConfigError("--hr and --crop-border go with --images; a --set folder holds "
                              "its own HR/ and is cropped by the scale")
        sets = parse_set_args(args.set)
        if args.task:  # made once per (task, set) and reused while up to date
            from optiqa.data.testsets import task_test_sets

            sets = task_test_sets(sets, args.task, args.testsets, args.testset_seed,
                                  progress=show_progress(args))
        metrics = list(DEFAULT_METRICS) + (args.metric or [])
        skip = circular_metrics(args, metrics)  # before the model is read: a wrong name fails
        loaded = _load_generator_from_args(args)  # the results' header names the model (stdout)
        result = evaluate_sets(loaded, sets, [m for m in metrics if m not in skip],
                               device=args.device, tile=args.tile, overlap=args.tile_overlap,
                               save_images=args.save_images, progress=show_progress(args),
                               protocol=args.protocol)
    result.left_out = skip
    for line in result.warnings:
        warn(f"WARNING: {line}")
    print(format_results(result, per_image=not args.means_only))
    if args.json:
        write_json(args.json, result.to_dict())
    if args.save_images:
        print(f"images written under {args.save_images}/<set>/")
    return 0


def cmd_restore(args) -> int:
    from optiqa.restore.generator import restore_files

    loaded = _load_generator_from_args(args)
    warn(f"model: {loaded.describe()}")  # a diagnostic: stdout says what was written
    written = restore_files(loaded, args.input, args.output, device=args.device, tile=args.tile,
                            overlap=args.tile_overlap, progress=show_progress(args))
    print(f"wrote {len(written)} image(s)" + (f" to {written[0]}" if len(written) == 1 else
                                              f" under {args.output}"))
    return 0


def _add_generator_args(s) -> None:
    s.add_argument("--arch", help="generator TYPE[:key=value,...] when the checkpoint does not "
                   "name it, e.g. swinir, rrdbnet, srresnet:num_feat=32,num_block=4")
    s.add_argument("--weights", choices=["auto", "params_ema", "params"], default="auto",
                   help="which weights of the checkpoint (auto: params_ema when present)")
    s.add_argument("--scale", type=int, default=4, help="scale of the 'bicubic' baseline; with "
                   "--images, a ground truth larger than its image by less than this is "
                   "cropped to it")
    add_device(s)
    s.add_argument("--tile", type=int, help="restore in LR tiles of this size (large images)")
    s.add_argument("--tile-overlap", type=int, default=32, help="tile overlap in LR pixels")
    add_quiet(s)


def add_parsers(sub) -> None:
    s = sub.add_parser("evaluate", help="score a trained generator on SR test sets, or a "
                       "folder of restored images",
                       description="PSNR/SSIM on BT.601 Y with a border crop = scale under a "
                       "named protocol (matlab: the published tables; basicsr: BasicSR's "
                       "metrics), plus any registered metric, full- or no-reference; per image "
                       "and mean per set. With --images, stored images are scored as they are "
                       "(no model), against --hr when given.")
    s.add_argument("source", nargs="?", help="run folder (newest checkpoint), checkpoint file, "
                   "or 'bicubic' for the baseline")
    s.add_argument("--set", action="append", metavar="NAME=PATH",
                   help="test set: a folder with HR/ (and LR_bicubic/X<scale>/) or of HR images; "
                   "repeatable")
    s.add_argument("--images", metavar="DIR", help="a folder of restored images to score as "
                   "stored, instead of a model and --set")
    s.add_argument("--hr", metavar="DIR", help="with --images: the ground truth, paired by name "
                   "(baby_x4.png -> baby.png): a folder of images or a set root with HR/ (as "
                   "--set); needed by full-reference metrics")
    s.add_argument("--strict", action="store_true", help="with --images: a restored image "
                   "without ground truth is an error (exit 2) instead of being skipped with a "
                   "warning, as in `optiqa score`")
    s.add_argument("-m", "--metric", action="append",
                   help="extra metric, full- or no-reference (repeatable); psnr_y and ssim_y "
                   "are always computed when there is ground truth")
    s.add_argument("--training-loss", action="append", metavar="METRIC",
                   help="the metric(s) the model was trained with (repeatable: every loss "
                   "term): metrics it may not be judged by (the same, its family, a shared "
                   "feature extractor; the circularity rule of a study) are not computed and "
                   "listed with the reason. Default: every metric is computed")
    s.add_argument("--discriminator-backbone", metavar="BACKBONE",
                   help="with --training-loss: the pretrained backbone of the model's "
                   "discriminator (e.g. effnet_lite0); metrics on its features are not "
                   "computed either")
    s.add_argument("--protocol", choices=["matlab", "basicsr"], default="matlab",
                   help="how psnr_y/ssim_y are computed: matlab (rgb2ycbcr of uint8, greyscale "
                   "files as grey; reproduces the published tables) or basicsr (BasicSR's "
                   "calculate_psnr/ssim, test_y_channel=True)")
    s.add_argument("--crop-border", type=int, metavar="N", help="with --images: pixels removed "
                   "on each side before every metric (default 0; SR sets use the scale)")
    s.add_argument("--save-images", metavar="DIR", help="write outputs to DIR/<set>/<image>.png")
    s.add_argument("--task", action="append", metavar="TASK",
                   help="degrade each set's HR images by this task (optiqa tasks list) into a "
                   "test set made once under --testsets; repeatable")
    s.add_argument("--testsets", default="testsets", metavar="DIR",
                   help="folder of the made task test sets (default: ./testsets)")
    s.add_argument("--testset-seed", type=int, default=0, help="seed of the task test sets")
    s.add_argument("--json", help="also write the results as JSON")
    s.add_argument("--means-only", action="store_true", help="print only the mean rows")
    _add_generator_args(s)
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("restore", help="run a trained generator on an image or a folder",
                       description="Super-resolves INPUT (an image, or a folder searched "
                       "recursively) with a run's newest checkpoint, a checkpoint file (ours, "
                       "official SwinIR/ESRGAN releases) or the 'bicubic' baseline, and writes "
                       "8-bit PNGs; large images in tiles with --tile. The model used is named on "
                       "stderr.")
    s.add_argument("source", help="run folder, checkpoint file, or 'bicubic'")
    s.add_argument("input", help="image file or folder (searched recursively)")
    s.add_argument("output", help="output file, or folder (PNG files, same relative names)")
    _add_generator_args(s)
    s.set_defaults(func=cmd_restore)
