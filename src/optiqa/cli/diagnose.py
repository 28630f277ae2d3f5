"""``optiqa diagnose recovery|spectrum|local|mad|eigen``: why a metric fails as a loss."""
from __future__ import annotations

from optiqa.cli.common import add_quiet, show_progress, warn


def _metric_names(args) -> list[str]:
    from optiqa.core.errors import ConfigError
    from optiqa.diagnose.recovery import classical_metrics

    names = list(args.metric or [])
    if getattr(args, "classical", False):
        names += classical_metrics()
    names = list(dict.fromkeys(names))
    if not names:
        raise ConfigError("give at least one metric", option="metric")
    return names


def _references(args) -> dict:
    from pathlib import Path

    from optiqa.core.errors import InputError
    from optiqa.diagnose.inputs import load_reference

    refs = {}
    for path in args.reference:
        name = Path(path).stem
        if name in refs:
            raise InputError(f"two references are called {name!r}: rename one")
        refs[name] = load_reference(path, args.crop)
    return refs


def _restored_pair(args):
    """(reference, restored image, description) for spectrum and local."""
    from optiqa.core.errors import InputError
    from optiqa.diagnose.inputs import bicubic_restoration, load_reference

    ref = load_reference(args.reference, args.crop)
    if args.restored:
        restored = load_reference(args.restored, args.crop)
        if restored.shape != ref.shape:
            raise InputError(f"{args.restored}: {tuple(restored.shape[-2:])} differs from the "
                             f"reference's {tuple(ref.shape[-2:])}")
        what = f"restored image {args.restored}"
    else:
        restored = bicubic_restoration(ref, args.scale)
        what = f"bicubic x{args.scale} down-and-up of the reference (stand-in restored image)"
    return ref, restored, what


def _done(written, folder) -> None:
    print(f"wrote {len(written)} files under {folder}")


def cmd_recovery(args) -> int:
    from optiqa.diagnose.outputs import recovery_table, write_recovery
    from optiqa.diagnose.recovery import RecoveryOptions, run_recovery

    options = RecoveryOptions(starts=tuple(args.starts.split(",")), steps=args.steps, lr=args.lr,
                              seed=args.seed, dists=args.dists, bounds=args.bounds,
                              device=args.device)
    report = run_recovery(_metric_names(args), _references(args), options,
                          progress=show_progress(args))
    print(recovery_table(report))
    _done(write_recovery(report, args.out, palette_colours=args.palette,
                         images=not args.no_images), args.out)
    return 0


def cmd_spectrum(args) -> int:
    from optiqa.diagnose.outputs import spectrum_table, write_spectrum
    from optiqa.diagnose.spectrum import gradient_spectrum

    ref, restored, what = _restored_pair(args)
    spectra = [gradient_spectrum(name, restored[None].to(args.device), ref[None].to(args.device))
               for name in _metric_names(args)]
    header = f"loss gradients at the {what}"
    print(spectrum_table(spectra, header))
    _done(write_spectrum(spectra, args.out, header, {"reference": args.reference,
                                                      "restored": args.restored or what},
                         args.palette), args.out)
    return 0


def cmd_local(args) -> int:
    from optiqa.diagnose.local import scan_lines
    from optiqa.diagnose.outputs import local_table, write_local

    ref, restored, what = _restored_pair(args)
    scans = [scan_lines(name, ref[None].to(args.device), restored[None].to(args.device),
                        n_random=args.random, seed=args.seed) for name in _metric_names(args)]
    header = f"lines from the reference towards the {what}"
    print(local_table(scans, header))
    _done(write_local(scans, args.out, header, {"reference": args.reference,
                                                "restored": args.restored or what},
                      args.palette), args.out)
    return 0


def cmd_mad(args) -> int:
    from optiqa.core.errors import ConfigError
    from optiqa.diagnose.inputs import load_reference
    from optiqa.diagnose.outputs import mad_table, write_mad
    from optiqa.diagnose.synthesis import MADOptions, mad_competition

    names = _metric_names(args)
    if len(names) != 2:
        raise ConfigError(f"MAD competition takes exactly two metrics, got {len(names)}",
                          option="metric")
    options = MADOptions(noise_std=args.noise, steps=args.steps, lr=args.lr, seed=args.seed,
                         stiffness=args.stiffness, tradeoff=args.tradeoff, device=args.device)
    result = mad_competition(names[0], names[1], load_reference(args.reference, args.crop),
                             options, progress=show_progress(args))
    print(mad_table(result))
    for img in result.images:
        if img.fixed_drift > 0.01:
            warn(f"warning: {img.name}: {img.fixed} drifted {100 * img.fixed_drift:.1f}% from "
                 "its target; raise --stiffness or --steps")
    _done(write_mad(result, args.out, args.palette), args.out)
    return 0


def cmd_eigen(args) -> int:
    from optiqa.core.errors import ConfigError
    from optiqa.diagnose.inputs import load_reference
    from optiqa.diagnose.outputs import eigen_table, write_eigen
    from optiqa.diagnose.synthesis import EigenOptions, eigendistortions

    names = _metric_names(args)
    if len(names) != 1:
        raise ConfigError(f"eigendistortions take one metric, got {len(names)}", option="metric")
    options = EigenOptions(max_iter=args.max_iter, epsilon=args.epsilon, seed=args.seed,
                           device=args.device)
    result = eigendistortions(names[0], load_reference(args.reference, args.crop), options,
                              progress=show_progress(args))
    print(eigen_table(result))
    _done(write_eigen(result, args.out, args.palette), args.out)
    return 0


def _common(s, out_default: str, several: bool = True) -> None:
    s.add_argument("-m", "--metric", action="append",
                   help="metric name (repeatable); see `optiqa metrics`")
    if several:
        s.add_argument("--classical", action="store_true",
                       help="add every differentiable metric that needs no network")
    s.add_argument("--crop", type=int, help="use the central CROP x CROP of each image")
    s.add_argument("-o", "--out", default=out_default, help=f"output folder ({out_default})")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="cpu")
    s.add_argument("--palette", type=int, metavar="N",
                   help="quantise the figures to N colours (smaller PNGs, e.g. for docs)")
    add_quiet(s)


def add_parsers(sub) -> None:
    d = sub.add_parser("diagnose", help="why a metric fails as a loss: recovery test, gradient "
                       "spectrum, local scans, MAD competition, eigendistortions")
    dsub = d.add_subparsers(dest="diagnostic", required=True, metavar="DIAGNOSTIC")

    s = dsub.add_parser("recovery", help="optimise pixels from several starts to minimise each "
                        "metric; does it recover the reference? (Ding et al. 2021)")
    s.add_argument("reference", nargs="+", help="reference image file(s)")
    _common(s, "diagnose_recovery")
    s.add_argument("--steps", type=int, default=300, help="Adam steps (300)")
    s.add_argument("--lr", type=float, default=0.05, help="Adam step size, cosine-decayed (0.05)")
    s.add_argument("--starts", default="noise,constant,blur,jpeg",
                   help="initial images, comma-separated (noise,constant,blur,jpeg)")
    s.add_argument("--dists", help="DISTS metric that judges results (default: dists if its "
                   "weights are here, else dists_vgg16_r)")
    s.add_argument("--bounds", choices=["project", "sigmoid"], default="project",
                   help="keep pixels in [0, 1] by clamping after each step (default) or as "
                   "x = sigmoid(p)")
    s.add_argument("--no-images", action="store_true", help="write the grid and tables only")
    s.set_defaults(func=cmd_recovery)

    for name, helptext, func, out in (
            ("spectrum", "power spectrum of each loss's gradient at a restored image, and its "
             "share per octave band", cmd_spectrum, "diagnose_spectrum"),
            ("local", "each loss along the line from the reference to a restored image and "
             "along random directions", cmd_local, "diagnose_local")):
        s = dsub.add_parser(name, help=helptext)
        s.add_argument("reference", help="reference image file")
        _common(s, out)
        s.add_argument("--restored", help="restored image (same size); default: bicubic "
                       "down-and-up of the reference by --scale")
        s.add_argument("--scale", type=int, default=4, help="scale of the bicubic stand-in (4)")
        if name == "local":
            s.add_argument("--random", type=int, default=4,
                           help="number of random directions (4)")
        s.set_defaults(func=func)

    s = dsub.add_parser("mad", help="MAD competition between two metrics (plenoptic)")
    s.add_argument("reference", help="reference image file")
    _common(s, "diagnose_mad", several=False)
    s.add_argument("--noise", type=float, default=0.1,
                   help="std of the Gaussian noise of the initial image (0.1)")
    s.add_argument("--steps", type=int, default=300, help="synthesis steps per image (300)")
    s.add_argument("--lr", type=float, default=0.01, help="Adam step size (0.01)")
    s.add_argument("--stiffness", type=float, default=1e3,
                   help="how hard the other metric is held fixed (1000)")
    s.add_argument("--tradeoff", type=float,
                   help="plenoptic's metric_tradeoff_lambda, overrides --stiffness")
    s.set_defaults(func=cmd_mad)

    s = dsub.add_parser("eigen", help="most and least noticeable distortions of a metric at an "
                        "image (plenoptic)", description="Extreme eigenvectors of the Hessian of "
                        "the metric's loss at the reference, by plenoptic's power method. Each "
                        "iteration costs a few passes of third-order autograd through the "
                        "metric: use --crop (64-128 px) for the heavier metrics.")
    s.add_argument("reference", help="reference image file")
    _common(s, "diagnose_eigen", several=False)
    s.add_argument("--max-iter", type=int, default=500,
                   help="power-method iterations per end of the spectrum (500)")
    s.add_argument("--epsilon", type=float, default=0.05,
                   help="largest RMS of the distortion in the saved images (0.05)")
    s.set_defaults(func=cmd_eigen)
