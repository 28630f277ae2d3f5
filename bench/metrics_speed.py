"""Forward+backward speed of metrics used as losses: optiqa vs piq vs pyiqa, in one run.

Batches of 16x3x128x128 and 16x3x256x256 (``--batch``, ``--sizes``) made from the built-in photos
with mild distortions. For each metric, each implementation runs ``loss = f(x, ref);
loss.backward()`` with ``x.requires_grad``; the median of ``--repeats`` interleaved runs after
``--warmup`` runs is reported (CPU: process CPU seconds, so that waiting for a core held by
another program is not counted; GPU: wall seconds between synchronisations), with the mean score
of each implementation so that equal values can be checked. Where piq's definition differs from
our default (SSIM/MS-SSIM on RGB channels, GMSD without 8-bit rounding) a second row times our
metric with piq's definition against piq (``ssim as piq``): that row is the like-for-like one.
The first row compares our default with pyiqa, which follows the official code as we do. piq's
VIF is the pixel-domain VIFp, a different definition: its value is shown for information only.

    python bench/metrics_speed.py --threads 1 --sections fr     # CPU (shared machine: 1 thread)
    python bench/metrics_speed.py --device cuda                 # GPU
Needs piq and (optionally) pyiqa installed: `pip install piq` and
`pip install --no-deps pyiqa` plus opencv-python-headless, requests (pyiqa's imports).

The NR section (``--sections nr``) scores 512x384 photos (the built-in ones, distorted) with our
NIQE, BRISQUE and PIQE (one batched forward) and with the third-party implementations that run
here (bench/nr_reference.py: scikit-video's and BasicSR's NIQE, pybrisque and the ``brisque``
package), one image at a time as their APIs take them; seconds per image, interleaved.

The photos section (``--sections photos``) scores full-resolution photos (Set14's HR images from
../shared, 276x276 to 720x576, or ``--photos FILES``) one at a time with ours and every
third-party NIQE, BRISQUE and PIQE that runs here (pass ``--third-party-path DIR`` where
``pip install --target DIR --no-deps pyiqa`` put IQA-PyTorch), in CPU seconds per image.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

import optiqa  # noqa: E402
from optiqa.data.distortions import distort  # noqa: E402
from optiqa.data.samples import load_samples  # noqa: E402

DEFAULT_METRICS = ["psnr", "ssim", "ms_ssim", "gmsd", "nlpd", "fsim", "vif", "vsi", "dists_vgg16"]
# piq function name, its kwargs, a note, and the options that give our metric piq's definition:
# piq's SSIM/MS-SSIM average the RGB channels and piq rounds nothing to 8 bits, where our
# defaults follow the official MATLAB code (rgb2gray of a uint8 image), as pyiqa does.
# With those options the two agree to float rounding, so "no slower than piq" is timed at equal
# values; pyiqa is compared with our defaults.
PIQ = {
    "psnr": ("psnr", {"data_range": 1.0}, "", {}),
    "ssim": ("ssim", {"data_range": 1.0}, "", {"colour": "rgb", "quantize": False}),
    "ms_ssim": ("multi_scale_ssim", {"data_range": 1.0}, "", {"colour": "rgb", "quantize": False}),
    "gmsd": ("gmsd", {"data_range": 1.0}, "", {"quantize": False}),
    "fsim": ("fsim", {"data_range": 1.0}, "", {}),
    "vif": ("vif_p", {"data_range": 1.0}, "piq: pixel-domain VIFp", {}),
    "vsi": ("vsi", {"data_range": 1.0}, "", {}),
}
PYIQA = {"psnr": "psnr", "ssim": "ssim", "ms_ssim": "ms_ssim", "gmsd": "gmsd", "nlpd": "nlpd", "fsim": "fsim",
         "vif": "vif", "vsi": "vsi", "dists_vgg16": "dists"}


def make_batch(n: int, size: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    photos = list(load_samples(max(size * 2, 256)).values())
    g = torch.Generator().manual_seed(0)
    refs, dists = [], []
    kinds = ["gaussian_noise", "gaussian_blur", "jpeg", "contrast"]
    for i in range(n):
        img = photos[i % len(photos)]
        top, left = (torch.randint(0, img.shape[1] - size + 1, (2,), generator=g)).tolist()
        crop = img[:, top:top + size, left:left + size]
        refs.append(crop)
        dists.append(distort(crop, kinds[i % len(kinds)], 1 + i % 5, seed=i))
    return torch.stack(dists).to(device), torch.stack(refs).to(device)


def ours(name, device, **options):
    m = optiqa.create_metric(name, device=device, **options)
    return lambda x, ref: m(x, ref)


def piq_fn(name):
    import piq

    fname, kwargs, _, _ = PIQ[name]
    f = getattr(piq, fname)
    return lambda x, ref: f(x, ref, reduction="none", **kwargs)


def pyiqa_fn(name, device):
    import pyiqa

    m = pyiqa.create_metric(PYIQA[name], as_loss=True, device=device)
    return lambda x, ref: m(x, ref)


@contextlib.contextmanager
def vgg16_standin(device):
    """Pretrained VGG-16 is not downloadable here: give ours, DISTS_pytorch and pyiqa the same
    fixed-seed random VGG-16 (speed does not depend on the weight values)."""
    from optiqa.models.testing import standin_weights

    with standin_weights("vgg16"):
        yield


def time_interleaved(fns: dict, x, ref, warmup: int, repeats: int, device) -> dict:
    """Time several implementations round-robin, one run each per repeat, in rotating order.

    A background load that comes and goes then hits every implementation alike, so the ratios
    stay meaningful on a shared machine. On the CPU the time is the process's CPU time (waiting
    for a core that another program holds is not counted; run with ``--threads 1`` on a shared
    machine), on a GPU the wall time between synchronisations. Returns
    {name: (median seconds, mean score)}.
    """
    def step(fn):
        xg = x.clone().requires_grad_(True)
        out = fn(xg, ref)
        (out.mean() if out.ndim else out).backward()
        return out

    clock = time.perf_counter if device.type == "cuda" else time.process_time
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            step(fns[name])
    times = {n: [] for n in names}
    last = {}
    for r in range(repeats):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = clock()
            last[name] = step(fns[name])
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(clock() - t0)
    return {n: (statistics.median(times[n]), float(last[n].detach().float().mean()))
            for n in names}


def implementations(name: str, device, use_pyiqa: bool) -> list[tuple[str, dict, dict]]:
    """Rows to time for one metric: ``(label suffix, {'ours'|'ref'|'pyiqa': fn}, notes)``.

    One row when piq (or DISTS_pytorch) and pyiqa compute what ours computes by default; two when
    piq's definition differs: ours (defaults) vs pyiqa, and ours with piq's definition vs piq.
    """
    fns, notes = {"ours": ours(name, device)}, {}
    rows = [("", fns, notes)]
    if name in PIQ:
        _, _, note, piq_options = PIQ[name]
        if piq_options:
            options = ", ".join(f"{k}={v}" for k, v in piq_options.items())
            rows.append((" as piq", {"ours": ours(name, device, **piq_options),
                                     "ref": piq_fn(name)}, {"ours": f"ours with {options}"}))
        else:
            fns["ref"] = piq_fn(name)
            notes["ref"] = note
    elif name.startswith("dists"):
        fns["ref"] = dists_pytorch_fn(device)
        notes["ref"] = "ref: DISTS_pytorch"
    if use_pyiqa and name in PYIQA:
        try:
            fns["pyiqa"] = pyiqa_fn(name, device)
        except Exception as e:
            notes["pyiqa"] = f"pyiqa failed: {str(e).splitlines()[0][:60]}"
    return rows


def nr_images(n: int, device) -> tuple[torch.Tensor, list]:
    """``n`` distorted 384x512 crops of the built-in photos: a float batch and uint8 HWC arrays."""
    photos = list(load_samples(512).values())
    kinds = ["gaussian_noise", "gaussian_blur", "jpeg", "contrast"]
    imgs = [distort(photos[i % len(photos)][:, 64:448, :], kinds[i % len(kinds)], 1 + i % 5,
                    seed=i) for i in range(n)]
    arrays = [(img.permute(1, 2, 0) * 255).round().byte().numpy() for img in imgs]
    return torch.stack(imgs).to(device), arrays


def nr_section(args, device) -> None:
    """Ours (batched) against third-party NR code (per image), forward only."""
    import nr_reference

    x, arrays = nr_images(args.nr_batch, device)
    n = len(arrays)
    name_dev = torch.cuda.get_device_name(device) if device.type == "cuda" else (
        f"CPU, {torch.get_num_threads()} threads")
    print(f"\n# no-reference metrics, {n} images 3x384x512, {name_dev}, torch "
          f"{torch.__version__}; median of {args.repeats} interleaved runs, seconds per image "
          "(ours: one batched forward; theirs: their API, one image at a time)")
    print(f"{'metric':<9} {'reference':<12} {'ours s/img':>10} {'ref s/img':>10} "
          f"{'ref/ours':>9} {'cpu ours':>9} {'cpu ref':>9} {'cpu ratio':>9}  {'ours mean':>9} "
          f"{'ref mean':>9}  notes")
    metrics = {}
    for name in ("niqe", "brisque", "piqe"):
        try:
            metrics[name] = optiqa.create_metric(name, device=device)
        except optiqa.WeightsUnavailable as e:
            print(f"{name:<9} ours unavailable: {e}")
    if args.third_party_path:  # after ours found their model files
        sys.path.insert(0, args.third_party_path)
    for name, refs in (("niqe", nr_reference.NIQE), ("brisque", nr_reference.BRISQUE),
                       ("piqe", nr_reference.PIQE)):
        if name not in metrics:
            continue
        metric = metrics[name]

        def ours():
            with torch.no_grad():
                return metric(x).float().cpu()

        rows = [(label, loader) for label, loader in refs.items()] or [("none", None)]
        for label, loader in rows:
            fns, note = {"ours": ours}, ""
            if loader is not None:
                try:
                    score = loader()
                    score(arrays[0])
                    fns["ref"] = lambda score=score: torch.tensor([score(a) for a in arrays])
                    note = (loader.__doc__ or "").strip().splitlines()[0]
                except Exception as e:  # a reference that cannot run is reported, not hidden
                    note = f"cannot run here: {type(e).__name__}: {str(e).splitlines()[0][:70]}"
            res = _time_forward(fns, args.warmup, args.repeats, device)
            t_ours, c_ours, v_ours = res["ours"]
            t_ref, c_ref, v_ref = res.get("ref", (None, None, None))

            def per_image(v):
                return f"{v / n:.4f}" if v else "n/a"

            def ratio(a, b):
                return f"{a / b:.1f}x" if a and b else "n/a"

            ref_v = f"{v_ref:.3f}" if v_ref is not None else "n/a"
            print(f"{name:<9} {label:<12} {t_ours / n:>10.4f} {per_image(t_ref):>10} "
                  f"{ratio(t_ref, t_ours):>9} {c_ours / n:>9.4f} {per_image(c_ref):>9} "
                  f"{ratio(c_ref, c_ours):>9}  {v_ours:>9.3f} {ref_v:>9}  {note}")
            sys.stdout.flush()


def default_photos() -> list[Path]:
    """Full-resolution photos: Set14's HR images from ../shared when present (248x360 to
    768x512), else none (the section then uses the built-in photos at their own size)."""
    root = Path(__file__).resolve().parents[2] / "shared" / "data" / "sr" / "Set14" / "HR"
    return sorted(root.glob("*.png")) if root.is_dir() else []


def photos_section(args, device) -> None:
    """NR metrics on whole photos, each at its own size, one image at a time for every
    implementation; median CPU (process) seconds per image over interleaved repeats, summed over
    the photos. The ratio is theirs / ours (above 1: ours is faster)."""
    import nr_reference
    from optiqa.data.io import read_image
    from optiqa.data.samples import load_samples

    paths = [Path(p) for p in args.photos] if args.photos else default_photos()
    if paths:
        imgs = [read_image(p) for p in paths]
        what = f"{len(imgs)} photos from {paths[0].parent}"
    else:
        imgs = list(load_samples(None).values())
        what = f"{len(imgs)} built-in photos"
    arrays = [(img.permute(1, 2, 0) * 255).round().byte().numpy() for img in imgs]
    sizes = sorted({tuple(i.shape[-2:]) for i in imgs}, key=lambda hw: hw[0] * hw[1])
    print(f"\n# no-reference metrics on full-resolution photos: {what} ({sizes[0][1]}x{sizes[0][0]}"
          f" to {sizes[-1][1]}x{sizes[-1][0]}), {torch.get_num_threads()} torch threads; "
          f"CPU seconds per image (median of {args.repeats} interleaved runs per photo, mean "
          "over photos); every implementation one image at a time")
    print(f"{'metric':<8} {'reference':<10} {'ours s/img':>10} {'ref s/img':>10} "
          f"{'ref/ours':>9}  {'ours mean':>9} {'ref mean':>9}  notes")
    if args.third_party_path:
        sys.path.insert(0, args.third_party_path)
    for name, refs in (("niqe", nr_reference.NIQE), ("brisque", nr_reference.BRISQUE),
                       ("piqe", nr_reference.PIQE)):
        metric = optiqa.create_metric(name, device=device)
        fns, notes = {}, []
        for label, loader in refs.items():
            try:
                score = loader()
                score(arrays[0])
                fns[label] = score
            except Exception as e:  # a reference that cannot run is reported, not hidden
                notes.append(f"{label} cannot run here: {type(e).__name__}: "
                             f"{str(e).splitlines()[0][:60] if str(e) else ''}")
        fns["ours"] = None
        cpu = {k: 0.0 for k in fns}
        vals = {k: [] for k in fns}
        for img, arr in zip(imgs, arrays):
            x = img[None].to(device)

            def run(label):
                if label == "ours":
                    with torch.no_grad():
                        return float(metric(x))
                return fns[label](arr)

            for label in fns:
                run(label)  # warm-up (model files, caches)
            times = {k: [] for k in fns}
            labels = list(fns)
            for r in range(args.repeats):
                for label in labels[r % len(labels):] + labels[:r % len(labels)]:
                    c0 = time.process_time()
                    v = run(label)
                    times[label].append(time.process_time() - c0)
                    if r == 0:
                        vals[label].append(v)
            for label in fns:
                cpu[label] += statistics.median(times[label])
        n = len(imgs)
        for label in [k for k in fns if k != "ours"] or ["none"]:
            t_ref = cpu.get(label)
            ref_mean = statistics.mean(vals[label]) if label in vals else None
            print(f"{name:<8} {label:<10} {cpu['ours'] / n:>10.4f} "
                  f"{(t_ref / n) if t_ref else float('nan'):>10.4f} "
                  f"{(t_ref / cpu['ours']) if t_ref else float('nan'):>8.2f}x  "
                  f"{statistics.mean(vals['ours']):>9.3f} "
                  f"{ref_mean if ref_mean is not None else float('nan'):>9.3f}  "
                  + ("" if label != "none" else "; ".join(notes)))
        for note in notes if len(fns) > 1 else []:
            print(f"{'':<8} {note}")
        sys.stdout.flush()


def _time_forward(fns: dict, warmup: int, repeats: int, device) -> dict:
    """Median wall and CPU (process) seconds of each ``fn()``, round-robin in rotating order,
    and its mean score: ``{name: (wall, cpu, mean)}``. On a shared CPU the process time is the
    fairer figure for single-threaded runs (waiting for a core is not counted)."""
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    wall, cpu, last = {n: [] for n in names}, {n: [] for n in names}, {}
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0, c0 = time.perf_counter(), time.process_time()
            last[name] = fns[name]()
            if device.type == "cuda":
                torch.cuda.synchronize()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    return {n: (statistics.median(wall[n]), statistics.median(cpu[n]), float(last[n].mean()))
            for n in names}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--metrics", nargs="+", default=DEFAULT_METRICS)
    p.add_argument("--no-pyiqa", action="store_true")
    p.add_argument("--sections", nargs="+", choices=["fr", "nr", "photos"],
                   default=["fr", "nr"])
    p.add_argument("--photos", nargs="+", help="images for the photos section (default: "
                   "Set14 HR from ../shared, else the built-in photos)")
    p.add_argument("--nr-batch", type=int, default=8, help="images in the NR section")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--third-party-path", help="folder put first on sys.path (e.g. where "
                   "`pip install --target` put the brisque package)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        try:  # OpenCV (pybrisque, BasicSR) gets the same number of threads
            import cv2
            cv2.setNumThreads(args.threads)
        except ImportError:
            pass
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    device = torch.device(args.device)
    if "fr" in args.sections:
        fr_section(args, device)
    if "nr" in args.sections:
        nr_section(args, device)
    if "photos" in args.sections:
        photos_section(args, device)
    return 0


def fr_section(args, device) -> None:
    for size in args.sizes:
        fr_table(args, device, size)


def fr_table(args, device, size: int) -> None:
    global _HEADER_DONE
    _HEADER_DONE = False
    x, ref = make_batch(args.batch, size, device)
    name_dev = torch.cuda.get_device_name(device) if device.type == "cuda" else (
        f"CPU, {torch.get_num_threads()} threads, CPU seconds")
    print(f"\n# forward+backward of the loss, batch {args.batch}x3x{size}x{size}, "
          f"{name_dev}, torch {torch.__version__}; median of {args.repeats} interleaved runs, "
          "seconds; ref = piq (DISTS_pytorch for dists); ref/ours above 1: ours is faster")
    jobs = [(name, x, ref, name) for name in args.metrics]
    if "ms_ssim" in args.metrics and size < 161:
        # piq and pyiqa reject MS-SSIM below 161 px: add a row at 192 px where all three run
        x192, ref192 = make_batch(args.batch, 192, device)
        jobs.append(("ms_ssim", x192, ref192, "ms_ssim@192"))
    for name, x, ref, label in jobs:
        ctx = vgg16_standin(device) if name.startswith("dists") else contextlib.nullcontext()
        with ctx:
            for suffix, fns, notes in implementations(name, device, not args.no_pyiqa):
                # an implementation that fails on these inputs is reported, not hidden
                # (piq's and pyiqa's MS-SSIM reject 128 px images)
                for impl in list(fns):
                    if impl == "ours":
                        continue
                    try:
                        fns[impl](x[:1].clone().requires_grad_(True), ref[:1]).sum().backward()
                    except Exception as e:
                        notes[impl] = f"{impl} failed: {str(e).splitlines()[0][:60]}"
                        del fns[impl]
                res = time_interleaved(fns, x, ref, args.warmup, args.repeats, device)
                print_row(label + suffix, res, notes)
                sys.stdout.flush()


def dists_pytorch_fn(device):
    """The reference DISTS package with the same stand-in VGG-16 and uniform alpha/beta as ours."""
    from optiqa.models.testing import torchvision_state_dict

    with tempfile.TemporaryDirectory() as home:
        ckpt = Path(home) / "hub" / "checkpoints"
        ckpt.mkdir(parents=True)
        torch.save(torchvision_state_dict("vgg16"), ckpt / "vgg16-397923af.pth")
        old = os.environ.get("TORCH_HOME")
        os.environ["TORCH_HOME"] = home
        try:
            from DISTS_pytorch import DISTS

            model = DISTS(load_weights=False).to(device)
            # load_weights=False leaves alpha/beta random; all ones (normalised by their sum
            # inside DISTS) is the uniform weighting of our dists_vgg16, so the values agree
            model.alpha.data.fill_(1.0)
            model.beta.data.fill_(1.0)
        finally:
            if old is None:
                os.environ.pop("TORCH_HOME")
            else:
                os.environ["TORCH_HOME"] = old
    return lambda x, ref: model(x, ref, require_grad=True)


_HEADER_DONE = False


def print_row(name, res, notes):
    global _HEADER_DONE
    if not _HEADER_DONE:
        print(f"{'metric':<22} {'ours s':>8} {'ref s':>8} {'pyiqa s':>8} {'ref/ours':>9} "
              f"{'pyiqa/ours':>10}  {'ours val':>9} {'ref val':>9} {'pyiqa val':>9}  notes")
        _HEADER_DONE = True

    def f(v, fmt="{:.4f}"):
        return fmt.format(v) if v is not None else "n/a"

    t_ours, v_ours = res["ours"]
    t_ref, v_ref = res.get("ref", (None, None))
    t_py, v_py = res.get("pyiqa", (None, None))
    r_ref = t_ref / t_ours if t_ref else None
    r_py = t_py / t_ours if t_py else None
    print(f"{name:<22} {f(t_ours):>8} {f(t_ref):>8} {f(t_py):>8} {f(r_ref, '{:.2f}x'):>9} "
          f"{f(r_py, '{:.2f}x'):>10}  {f(v_ours):>9} {f(v_ref):>9} {f(v_py):>9}  "
          f"{'; '.join(n for n in notes.values() if n)}")


if __name__ == "__main__":
    sys.exit(main())
