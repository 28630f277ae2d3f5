"""Consistent edges of the ``optiqa`` command (day-two report, point 6): sizes written width x
height, one rule for missing ground truth (``--strict`` to refuse), set roots for ``evaluate
--hr``, ``train --help`` from the registries, true stage labels, progress bars only on terminals
(stderr is a pipe or a buffer here, never a terminal), task-aware wording, NR metrics as training
terms, ``judge serve``'s stop hint and request log, and a CPU estimate in ``study --dry-run``.
``judge serve`` and the first dry run go through the real entry point in a subprocess (a signal;
a GPU hidden from the process), the rest through ``optiqa.cli.main`` in this process
(``clitools.run_main``)."""
from __future__ import annotations

import json
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest
import torch

from clitools import cli_env, optiqa_cmd, run_main, run_optiqa
from imaging import astronaut_crop
from optiqa.data.io import write_image

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "configs" / "train" / "tiny_cpu.yaml")


@pytest.fixture
def restored(tmp_path):
    """A set root with HR/ (baby, bird; bird 40 wide x 32 high) and restored images: baby and
    bird as the ground truth plus noise, cat without ground truth, bird 10 px too narrow."""
    root, out = tmp_path / "Set2", tmp_path / "out"
    baby, bird = astronaut_crop(40), astronaut_crop(40, top=10)[..., :32, :]
    write_image(root / "HR" / "baby.png", baby[0])
    write_image(root / "HR" / "bird.png", bird[0])
    g = torch.Generator().manual_seed(0)
    write_image(out / "baby_x4.png", (baby[0] + 0.03 * torch.randn(baby[0].shape, generator=g))
                .clamp(0, 1))
    write_image(out / "bird_x4.png", bird[0, :, :, :30])
    write_image(out / "cat_x4.png", baby[0])
    return root, out


def test_sizes_missing_ground_truth_and_set_roots(restored, tmp_path):
    root, out = restored
    # score: the narrow bird is n/a with its sizes as width x height, cat is skipped, exit 0
    score = run_main("score", "-m", "psnr", out, root / "HR", "-q")
    assert score.returncode == 0, score.stderr
    assert "bird_x4.png: size 30x32 differs from its reference" in score.stdout + score.stderr
    assert "(40x32; width x height)" in score.stdout + score.stderr
    assert "skipped 1 distorted image(s)" in score.stderr and "cat_x4.png" in score.stderr
    # evaluate --images: the set root is accepted as --hr, the same sizes in the same order
    ev = run_main("evaluate", "--images", out, "--hr", root, "-q")
    assert ev.returncode == 2
    assert "bird_x4.png: size 30x32 differs from its ground truth" in ev.stderr
    assert "(40x32; width x height)" in ev.stderr
    (out / "bird_x4.png").unlink()
    ev = run_main("evaluate", "--images", out, "--hr", root, "-q", "--json",
                  tmp_path / "e.json")
    assert ev.returncode == 0, ev.stderr
    assert "WARNING: skipped 1 restored image(s)" in ev.stderr and "cat_x4.png" in ev.stderr
    result = json.loads((tmp_path / "e.json").read_text())["sets"]["out"]
    assert result["images"] == 1 and "1 image(s) without ground truth skipped" in \
        result["lq_source"]
    # --strict refuses it in both commands
    for cmd in (["score", "-m", "psnr", out, root / "HR"], ["evaluate", "--images", out, "--hr",
                                                             root]):
        strict = run_main(*cmd, "--strict", "-q")
        assert strict.returncode == 2 and "cat_x4.png" in strict.stderr, (cmd, strict.stderr)


def test_train_help_lists_every_registered_generator():
    from optiqa.nets.generator_specs import REGISTRY, GeneratorSpec

    REGISTRY.register("my_net", GeneratorSpec("my_net", "optiqa.nets.srresnet:srresnet", "mine"))
    try:
        proc = run_main("train", "--help")
    finally:
        REGISTRY.unregister("my_net")
    text = " ".join(proc.stdout.split())
    for name in ("swinir", "rrdbnet", "srresnet", "hat", "span", "omnisr", "my_net", "patchgan"):
        assert f" {name}," in text or f" {name}." in text, name
    assert "Not trainable (baselines for `optiqa evaluate`): bicubic." in text


def test_l1_only_run_is_labelled_pixel_only_and_writes_no_progress_bar_to_a_pipe(tmp_path):
    run = tmp_path / "run"
    proc = run_main("train", TINY, "network_g={type: srresnet, num_feat: 8, num_block: 1}",
                    "network_d=null", "train.gan_opt=null", "train.fidelity_opt=null",
                    "train.pixel_only_iter=0", "train.total_iter=4", "train.warmup_iter=0",
                    "datasets.train.gt_size=32", "datasets.train.batch_size=2", "val=null",
                    "datasets.val=null", "logger.print_freq=2", "--run-dir", run)
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = (run / "log.txt").read_text()
    assert "iter 4/4 [pixel_only]" in log and "[perceptual]" not in log
    # stderr is a pipe here: the log lines, but no tqdm redraws
    assert "iter 2/4 [pixel_only]" in proc.stderr
    assert "\r" not in proc.stderr and "it/s" not in proc.stderr and "s/it]" not in proc.stderr


def test_nr_metric_trains_as_a_no_reference_term_and_the_study_says_how(tmp_path):
    run = tmp_path / "run"
    proc = run_main("train", TINY, "network_g={type: srresnet, num_feat: 8, num_block: 1}",
                    "train.fidelity_opt.metric=brisque", "train.fidelity_opt.weight=0.001",
                    "network_d=null", "train.gan_opt=null", "train.pixel_only_iter=0",
                    "train.total_iter=2", "train.warmup_iter=0", "datasets.train.batch_size=2",
                    "val=null", "datasets.val=null", "logger.print_freq=1", "--run-dir", run,
                    "-q")
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = next(x for x in (run / "log.txt").read_text().splitlines() if "iter 2/2" in x)
    assert "fidelity" in line and "[perceptual]" in line
    study = run_main("study", REPO / "configs" / "study" / "quick.yaml", "--out",
                     tmp_path / "s", "fidelity.metrics=[ssim,brisque]", "--dry-run")
    assert study.returncode == 2
    assert ("'brisque' is a no-reference metric" in study.stderr
            and "train.fidelity_opt.metric=brisque" in study.stderr), study.stderr


def test_scale_1_evaluation_speaks_of_inputs_not_lr_images(tmp_path):
    proc = run_main("evaluate", "bicubic", "--scale", "1", "--set", "val=builtin:samples/64",
                    "--means-only", "-q", "--json", tmp_path / "r.json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "r.json").read_text())
    source = result["sets"]["val"]["lq_source"]
    assert source.startswith("inputs (no upscaling): made on the fly from the ground-truth")
    assert "LR" not in source and "HR" not in source
    assert result["convention"].startswith("x1 (no upscaling)")
    assert "(= scale)" not in result["convention"]


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_judge_serve_says_how_to_stop_and_logs_requests(tmp_path):
    pytest.importorskip("flask")
    from judge_helpers import make_study

    study = make_study(tmp_path / "study")
    # PYTHONFAULTHANDLER: if Ctrl-C ever fails to stop the server, SIGABRT makes it print every
    # thread's stack. It did fail whenever the tests ran as a background job (`make test &`,
    # `nohup`): a shell starts those with SIGINT ignored, the server inherited that, and Python
    # then leaves Ctrl-C ignored; a user's foreground server gets the default, as here.
    proc = subprocess.Popen(optiqa_cmd("judge", "serve", study, "--port", "0"),
                            env=cli_env(PYTHONFAULTHANDLER=1), preexec_fn=_default_sigint,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().split()[-1]
        with urllib.request.urlopen(url.split("?")[0] + "api/config", timeout=30) as r:
            assert r.status == 200
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)
            _, err = proc.communicate(timeout=30)
            pytest.fail(f"judge serve did not stop within 60 s of Ctrl-C; its threads:\n{err}")
    assert proc.returncode == 0, err
    assert "Ctrl-C to stop" in err
    assert "GET /api/config 200" in err


def test_study_dry_run_estimates_cpu_time_without_a_gpu_step(tmp_path):
    proc = run_optiqa("study", REPO / "configs" / "study" / "quick.yaml", "--out",
                      tmp_path / "s", "--dry-run", "--cells", "sr_x4__l1__none",
                      env=cli_env(CUDA_VISIBLE_DEVICES=""))
    assert proc.returncode == 0, proc.stderr
    assert "GPU hours unknown" in proc.stdout
    line = next(x for x in proc.stdout.splitlines() if x.startswith("on this machine's CPU"))
    hours = float(line.split("about ")[1].split()[0])
    assert hours > 0 and "kind(s) of run timed here" in line
    quiet = run_main("study", REPO / "configs" / "study" / "quick.yaml", "--out",
                     tmp_path / "s", "--dry-run", "--cells", "sr_x4__l1__none", "--json")
    info = json.loads(quiet.stdout)
    assert info["cpu_estimate"]["cpu_hours"] > 0 and info["cpu_estimate"]["measured"] >= 1
