"""Command-line side of ``optiqa transfer``: options from arguments, cross datasets, text output."""
from __future__ import annotations

from optiqa.errors import ConfigError, InputError
from optiqa.tables import format_table
from optiqa.transfer.experiment import SUMMARY_HEADERS, TransferOptions, summary_rows
from optiqa.transfer.fitting import TrainSettings


def transfer_options(args) -> TransferOptions:
    """:class:`TransferOptions` from ``optiqa transfer``'s arguments, checked."""
    missing = [f"--{n}" for n in ("backbone", "init", "kind") if not getattr(args, n)]
    if missing:
        raise ConfigError(f"transfer needs {', '.join(missing)} (or --zero-shot RUN_DIR)")
    train = TrainSettings(epochs=args.epochs, patience=args.patience,
                          batch_size=args.train_batch_size, lr=args.lr,
                          backbone_lr=args.backbone_lr, crop=args.crop or 224,
                          device=args.device, eval_batch_size=args.batch_size,
                          workers=args.workers)
    opts = TransferOptions(backbone=args.backbone, init=args.init, kind=args.kind,
                           mode=args.mode or "frozen", head=args.head, repeats=args.repeats,
                           test_fraction=args.test_fraction, val_fraction=args.val_fraction,
                           seed=args.seed, train=train)
    opts.check()
    return opts


def check_zero_shot_args(args) -> None:
    """``--zero-shot`` scores with the discriminator itself: model options do not apply."""
    given = [f"--{n}" for n in ("backbone", "init", "kind", "mode", "head") if getattr(args, n)]
    given += ["--cross"] if args.cross else []
    if given:
        raise ConfigError(f"--zero-shot scores with the discriminator itself; "
                          f"{', '.join(given)} do not apply")


def load_cross(values, size: int):
    """``NAME[=ROOT]`` values -> datasets (``synthetic`` needs no root)."""
    from optiqa.data.iqa import load_dataset

    out = []
    for v in values or []:
        name, _, root = v.partition("=")
        if name.lower() == "synthetic":
            out.append(load_dataset("synthetic", size=size))
        elif not root:
            raise InputError(f"--cross {name}: give its image folder as --cross {name}=ROOT")
        else:
            out.append(load_dataset(name, root=root))
    return out


def result_lines(result: dict) -> list[str]:
    """Header, sign and statistics notes, and the summary table of a transfer result."""
    init = result["init"]
    lines = [f"transfer: {result['kind'].upper()} model on {result['backbone_title']} "
             f"(init {init}, {result['mode']}, {result['head']} head) - dataset "
             f"{result['dataset']}: {result['target']}"]
    if result.get("label"):
        lines.append(f"NOTE: {result['label']}")
    opts = result["options"]
    lines.append(f"{opts['repeats']} repeats; split by reference content: test "
                 f"{opts['test_fraction']:g}, validation {opts['val_fraction']:g} of the rest "
                 "(early stopping on validation only)")
    lines.append(f"sign: {result['sign']}")
    lines.append(f"{result['plcc_note']}; {result['std_note']}")
    if result.get("evaluation") == "within":
        lines.append("within-(content, distortion) mean SRCC; PLCC not defined for an ordinal "
                     "target")
    feats = result.get("features")
    if feats:
        lines.append(f"features extracted once: {feats['images']} images in {feats['seconds']:.1f}"
                     f" s ({feats['images_per_second']:.1f} images/s), {feats['dim']} values each")
    lines.append(format_table(SUMMARY_HEADERS, summary_rows(result)))
    if result.get("from_store"):
        lines.append(f"(from the store: {result['key']}; --force recomputes)")
    return lines


def zero_shot_lines(result: dict) -> list[str]:
    lines = [f"zero-shot: discriminator of {result['run']} (iteration {result['iteration']}, "
             f"{result['level']}-level) on {result['dataset']}: {result['target']}"]
    if result.get("label"):
        lines.append(f"NOTE: {result['label']}")
    lines.append(f"crops: up to {result['grid']}x{result['grid']} of {result['crop']}px per image")
    lines.append(f"sign: {result['sign_note']}")
    rows = [["SRCC", result.get("srcc"), result.get("srcc_ci")],
            ["KRCC", result.get("krcc"), result.get("krcc_ci")]]
    if result.get("evaluation") == "within":
        lines.append("within-(content, distortion) means; PLCC not defined for an ordinal target")
    else:
        lines.append(result["plcc_note"])
        rows.append(["PLCC", result.get("plcc"), result.get("plcc_ci")])
    lines.append(format_table(["statistic", "value", "95% CI (bootstrap over contents)"],
                              [[n, v, f"[{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "-"]
                               for n, v, ci in rows]))
    if result.get("from_store"):
        lines.append(f"(from the store: {result['key']}; --force recomputes)")
    return lines


__all__ = ["transfer_options", "check_zero_shot_args", "load_cross", "result_lines",
           "zero_shot_lines"]
