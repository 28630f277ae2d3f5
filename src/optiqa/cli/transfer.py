"""``optiqa transfer``: IQA models on backbones (random / ImageNet / discriminator init)."""
from __future__ import annotations

from optiqa.cli.assess import add_iqa_data_args, add_run_args, load_iqa_dataset, warn_notes
from optiqa.cli.common import show_progress


REQUIRED_MODEL = ("backbone", "init", "kind")


def transfer_options(args):
    """:class:`~optiqa.transfer.experiment.TransferOptions` from the arguments, checked: the
    values given first (a typo is reported as such), then what is missing."""
    from optiqa.models import backbones
    from optiqa.core.errors import ConfigError
    from optiqa.transfer.experiment import TransferOptions
    from optiqa.transfer.fitting import TrainSettings
    from optiqa.transfer.init import find_discriminator_checkpoint, parse_init

    if args.backbone:
        backbones.spec(args.backbone)
    if args.init:
        init = parse_init(args.init)
        if init.kind == "gan":
            find_discriminator_checkpoint(init.path)
    missing = [f"--{n}" for n in REQUIRED_MODEL if not getattr(args, n)]
    if missing:
        raise ConfigError(f"transfer needs --backbone, --init and --kind (missing: "
                          f"{', '.join(missing)}), or --zero-shot RUN_DIR")
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
                                   progress=show_progress(args))
            lines = zero_shot_lines(result)
        else:
            from optiqa.transfer.experiment import run_transfer

            result = run_transfer(opts, dataset, cross, store=store, force=args.force,
                                  progress=show_progress(args))
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
                       description="Either a model: --backbone, --init and --kind (all three "
                       "required) on dataset -d, over repeated content splits (train/validation/"
                       "test, early stopping on validation only), reporting mean/std/median "
                       "SRCC, KRCC and PLCC over repeats (PLCC where defined); or --zero-shot "
                       "RUN_DIR: the discriminator's logit as a quality score on -d.")
    m = s.add_argument_group("model (--backbone, --init and --kind are required unless "
                             "--zero-shot)")
    m.add_argument("--backbone", help="backbone name (see `optiqa weights list`)")
    m.add_argument("--init", help="random | imagenet | gan:<run-dir-or-checkpoint>")
    m.add_argument("--kind", choices=["nr", "fr"], help="no-reference or full-reference model")
    m.add_argument("--mode", choices=["frozen", "finetune"],
                   help="frozen: train the head on cached features (default); finetune: all")
    m.add_argument("--head", choices=["linear", "mlp"],
                   help="head (default: linear when frozen, mlp when fine-tuned)")
    z = s.add_argument_group("zero-shot (instead of a model)")
    z.add_argument("--zero-shot", metavar="RUN_DIR",
                   help="score with the trained discriminator of RUN_DIR (or a net_d checkpoint)")
    z.add_argument("--grid", type=int, default=3, help="grid x grid crops (default 3)")
    z.add_argument("--bootstrap", type=int, default=2000,
                   help="bootstrap resamples for CIs (default 2000)")
    d = s.add_argument_group("data (-d is required)")
    add_iqa_data_args(d)
    d.add_argument("--cross", action="append", metavar="NAME[=ROOT]",
                   help="also test on this dataset in full (cross-database; repeatable)")
    t = s.add_argument_group("protocol and training")
    t.add_argument("--repeats", type=int, default=10, help="repeats with different seeds "
                   "(default 10)")
    t.add_argument("--test-fraction", type=float, default=0.2,
                   help="share of contents held out for testing (default 0.2; 0 with --cross)")
    t.add_argument("--val-fraction", type=float, default=0.2,
                   help="share of the remaining contents used for early stopping (default 0.2)")
    t.add_argument("--epochs", type=int, default=30, help="most epochs per repeat (default 30)")
    t.add_argument("--patience", type=int, default=5,
                   help="stop after this many epochs without validation gain (default 5)")
    t.add_argument("--train-batch-size", type=int, default=32,
                   help="items per optimisation step (default 32)")
    t.add_argument("--lr", type=float, default=1e-3, help="head learning rate (default 1e-3)")
    t.add_argument("--backbone-lr", type=float, default=2e-5,
                   help="backbone learning rate when fine-tuning (default 2e-5)")
    t.add_argument("--crop", type=int, help="fine-tuning crop (default 224) / zero-shot crop "
                   "(default the run's gt_size)")
    r = s.add_argument_group("running and output")
    add_run_args(r)
    r.add_argument("--json", help="also write the result as JSON")
    r.add_argument("--store", metavar="STUDY_DIR", help="study folder: results go into its "
                   "results.db; a complete result is reused")
    r.add_argument("--force", action="store_true", help="recompute even if the store has it")
    s.set_defaults(func=cmd_transfer)
