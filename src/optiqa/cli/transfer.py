"""``optiqa transfer``: IQA models on backbones (random / ImageNet / discriminator init)."""
from __future__ import annotations

from optiqa.cli.assess import add_iqa_data_args, load_iqa_dataset, warn_notes


def transfer_options(args):
    """:class:`~optiqa.transfer.experiment.TransferOptions` from the arguments, checked."""
    from optiqa.core.errors import ConfigError
    from optiqa.transfer.experiment import TransferOptions
    from optiqa.transfer.fitting import TrainSettings

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
    from optiqa.core.errors import ConfigError

    given = [f"--{n}" for n in ("backbone", "init", "kind", "mode", "head") if getattr(args, n)]
    given += ["--cross"] if args.cross else []
    if given:
        raise ConfigError(f"--zero-shot scores with the discriminator itself; "
                          f"{', '.join(given)} do not apply")


def load_cross(values, size: int):
    """``--cross NAME[=ROOT]`` values -> datasets (``synthetic`` needs no root)."""
    from optiqa.core.errors import InputError
    from optiqa.data.datasets import load_dataset

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


def cmd_transfer(args) -> int:
    from optiqa.core.store import ResultsStore
    from optiqa.core.tables import write_json
    from optiqa.transfer.report import result_lines, zero_shot_lines

    # names and values are checked before any data is loaded
    opts = check_zero_shot_args(args) if args.zero_shot else transfer_options(args)
    dataset = load_iqa_dataset(args)
    cross = load_cross(args.cross, size=args.size)
    warn_notes([dataset, *cross])
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
    if result.get("from_store"):
        print("(--force recomputes)")
    if args.json:
        write_json(args.json, result)
    return 0


def add_parsers(sub) -> None:
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
    add_iqa_data_args(s)
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
