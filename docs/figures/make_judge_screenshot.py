"""Make ``docs/figures/judge_page.png``: the judging page in headless Chromium.

    python docs/figures/make_judge_screenshot.py            # writes the screenshot
    python docs/figures/make_judge_screenshot.py --study DIR --no-screenshot   # a demo study only

The study is a demo: three built-in photos (scikit-image), and three *simulated* restorations
of a 4x downscaled copy (bicubic; bicubic then blurred, as an over-smoothed L1 result; bicubic
then sharpened with added grain, as an over-textured adversarial result). They only illustrate
the page; they are not outputs of trained models. Needs Flask, Playwright's Python driver and
Debian's chromium (``/usr/bin/chromium``).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

OUT = Path(__file__).with_name("judge_page.png")
PHOTOS = ("astronaut", "coffee", "chelsea")
RUNS = {"bicubic": "bicubic x4",
        "l1__none": "L1, no discriminator (simulated: smooth)",
        "gan__patch": "L1 + patch D (simulated: sharp, grainy)"}


def write_demo_study(folder: Path, size: int = 256, seed: int = 0) -> Path:
    from skimage import data

    rng = np.random.default_rng(seed)
    manifest = {"version": 1, "study": "demo", "references": {}, "runs": {
        name: {"label": label, "images": {}} for name, label in RUNS.items()}}
    for photo in PHOTOS:
        rgb = getattr(data, photo)()
        h, w = rgb.shape[:2]
        side = min(h, w)
        ref = Image.fromarray(rgb[(h - side) // 2:(h + side) // 2,
                                  (w - side) // 2:(w + side) // 2]).resize((size, size),
                                                                           Image.LANCZOS)
        small = ref.resize((size // 4, size // 4), Image.BICUBIC)
        up = small.resize((size, size), Image.BICUBIC)
        grain = np.asarray(up.filter(ImageFilter.UnsharpMask(2, 200, 2))).astype(float)
        grain += rng.normal(0, 10, grain.shape)
        versions = {"bicubic": up, "l1__none": up.filter(ImageFilter.GaussianBlur(0.8)),
                    "gan__patch": Image.fromarray(grain.clip(0, 255).astype(np.uint8))}
        image_id = f"photos/{photo}"
        rel = f"images/reference/{image_id}.png"
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        ref.save(folder / rel)
        manifest["references"][image_id] = rel
        for name, im in versions.items():
            rel = f"images/runs/{name}/{image_id}.png"
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            im.save(folder / rel)
            manifest["runs"][name]["images"][image_id] = rel
    (folder / "images" / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return folder


def screenshot(study: Path, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    from optiqa.judge.app import JudgeServer, quiet_request_log
    from optiqa.judge.service import JudgeOptions

    quiet_request_log()
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run"]
    with JudgeServer(study, port=0, options=JudgeOptions(crop_size=64)) as server, \
            sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                    args=args)
        page = browser.new_page(viewport={"width": 960, "height": 560})
        page.goto(server.url)
        page.fill("#rater-input", "alice")
        page.press("#rater-input", "Enter")
        # vote (left, right, ...) until the pair on screen shows the grainy run next to
        # another: the difference the page is for is then visible in the figure
        for n in range(20):
            deadline = time.monotonic() + 20
            while not page.evaluate("() => { const p = document.getElementById('pair');"
                                    " return p.dataset.ready === p.dataset.trial; }"):
                if time.monotonic() > deadline:
                    raise RuntimeError("the page did not show a pair")
                time.sleep(0.05)
            shown = server.service.store.trial(page.get_attribute("#pair", "data-trial"))
            if n >= 3 and "gan__patch" in (shown.run_left, shown.run_right):
                break
            page.keyboard.press("ArrowLeft" if n % 2 == 0 else "ArrowRight")
            time.sleep(0.2)
        page.screenshot(path=str(out))
        browser.close()
    # 8-bit palette: the page is mostly flat colour, the crops are small
    Image.open(out).convert("RGB").quantize(256, method=Image.MEDIANCUT).save(out, optimize=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", type=Path, help="write the demo study here (kept)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--no-screenshot", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        study = write_demo_study(args.study or Path(tmp) / "demo")
        print(f"demo study: {study}")
        if not args.no_screenshot:
            screenshot(study, args.out)
            print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
