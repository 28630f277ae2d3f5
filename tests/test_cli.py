"""The `optiqa` command: output, files written, one-line errors with exit code 2."""
import json

import numpy as np
import pytest
import torch
from clitools import run_main
from PIL import Image

from optiqa.cli import main
from optiqa.data.io import write_image


def run_cli(*args):
    """``optiqa ARGS`` as a user sees it (exit code, stdout and stderr, warnings and logging as a
    fresh process prints them), through ``optiqa.cli.main`` in this process
    (:func:`clitools.run_main`): these checks are about the messages, not the process, and a
    fresh interpreter costs seconds of torch imports each. The real entry point in a subprocess
    is tested in test_cli_entry.py."""
    return run_main(*args)


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    folder = tmp_path_factory.mktemp("samples")
    assert main(["samples", str(folder), "--size", "64"]) == 0
    return folder


def test_metrics_json_lists_orientation_and_availability(capsys):
    assert main(["metrics", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["psnr"]["orientation"] == "higher is better"
    assert rows["dists"]["lower_better"] is True
    assert rows["ssim"]["available_offline"] is True
    assert rows["dists_vgg16_r"]["available_offline"] is True  # random init needs no download


def test_metrics_table(capsys):
    assert main(["metrics"]) == 0
    out = capsys.readouterr().out
    assert "psnr" in out and "higher is better" in out


def test_score_folders_writes_table_csv_json(samples, tmp_path, capsys):
    csv_path, json_path = tmp_path / "s.csv", tmp_path / "s.json"
    code = main(["score", "-q", "-m", "psnr", "-m", "l1", str(samples / "distorted"),
                 str(samples / "reference"), "--csv", str(csv_path), "--json", str(json_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "astronaut_jpeg_4.png" in out and "mean" in out
    rows = json.loads(json_path.read_text())
    assert len(rows) == 16 and all(r["psnr"] > 10 for r in rows)
    assert csv_path.read_text().splitlines()[0] == "distorted,reference,psnr,l1"


def test_score_single_pair(samples, capsys):
    d, r = samples / "distorted" / "coffee_gaussian_blur_3.png", samples / "reference" / "coffee.png"
    assert main(["score", "-m", "psnr", str(d), str(r)]) == 0
    assert "coffee_gaussian_blur_3.png" in capsys.readouterr().out


@pytest.mark.parametrize("make_bad, message", [
    (lambda p: write_image(p / "d.png", torch.rand(3, 20, 24)), "differs from its reference"),
    (lambda p: (p / "d.png").write_bytes(b"garbage"), "d.png"),
    (lambda p: Image.fromarray(np.zeros((20, 20, 4), np.uint8), "RGBA").save(p / "d.png"),
     "transparent"),
])
def test_bad_files_give_one_line_error_and_exit_2(tmp_path, make_bad, message):
    write_image(tmp_path / "r.png", torch.rand(3, 20, 20))
    make_bad(tmp_path)
    proc = run_cli("score", "-m", "psnr", str(tmp_path / "d.png"), str(tmp_path / "r.png"))
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_too_small_image_names_file_and_metric(tmp_path):
    write_image(tmp_path / "r.png", torch.rand(3, 8, 8))
    write_image(tmp_path / "d.png", torch.rand(3, 8, 8))
    proc = run_cli("score", "-m", "ssim", str(tmp_path / "d.png"), str(tmp_path / "r.png"))
    assert proc.returncode == 2
    assert "d.png: ssim:" in proc.stderr and "too small" in proc.stderr


def test_unknown_metric_and_debug_traceback(tmp_path):
    write_image(tmp_path / "r.png", torch.rand(3, 16, 16))
    proc = run_cli("score", "-m", "nope", str(tmp_path / "r.png"), str(tmp_path / "r.png"))
    assert proc.returncode == 2 and "unknown metric 'nope'" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = run_cli("--debug", "score", "-m", "nope", str(tmp_path / "r.png"),
                   str(tmp_path / "r.png"))
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_missing_arguments_exit_2():
    proc = run_cli("score")
    assert proc.returncode == 2


def test_metrics_shows_the_kind(capsys):
    assert main(["metrics", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["psnr"]["kind"] == "fr" and rows["dists_vgg16_r"]["kind"] == "fr"
    assert {rows[n]["kind"] for n in ("niqe", "brisque", "piqe")} == {"nr"}
    assert rows["piqe"]["differentiable"] is False
    assert "pi" not in rows   # PI needs NRQM, whose model no package ships (docs/metrics.md)
    assert main(["metrics", "niqe"]) == 0
    header, _, row = capsys.readouterr().out.splitlines()[:3]
    assert header.split()[:2] == ["metric", "kind"] and row.split()[:2] == ["niqe", "nr"]
