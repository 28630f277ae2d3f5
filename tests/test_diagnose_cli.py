"""`optiqa diagnose ...`: one run as a user's subprocess, the rest in-process (small images, few
steps)."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from optiqa.cli import main
from optiqa.data.io import write_image
from optiqa.data.samples import load_sample

REPO = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1",
           PYTHONPATH=str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))


def optiqa(*args, cwd):
    return subprocess.run([sys.executable, "-m", "optiqa", *map(str, args)], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def ref_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("refs") / "chelsea.png"
    write_image(path, load_sample("chelsea", 80))
    return path


def test_recovery_cli_writes_table_grid_and_images(ref_file, tmp_path):
    r = optiqa("diagnose", "recovery", "-m", "mse", "-m", "ssim", ref_file, "--crop", "48",
               "--steps", "5", "-o", tmp_path / "out", "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "PSNR-Y" in r.stdout and "verdict" in r.stdout and "wrote" in r.stdout
    rows = list(csv.DictReader(open(tmp_path / "out" / "recovery.csv")))
    assert [(x["metric"], x["start"]) for x in rows][:2] == [("mse", "noise"), ("mse", "constant")]
    assert len(rows) == 8
    assert (tmp_path / "out" / "recovery_chelsea.png").stat().st_size > 10_000
    assert (tmp_path / "out" / "images" / "chelsea" / "ssim_blur.png").exists()


def test_spectrum_and_local_cli(ref_file, tmp_path, capsys):
    assert main(["diagnose", "spectrum", "-m", "mse", "-m", "gmsd", str(ref_file), "--crop",
                 "64", "-o", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "(white)" in out and "bicubic x4" in out
    assert {"spectrum.png", "spectrum_bands.png", "spectrum.csv", "spectrum_radial.csv"} <= {
        p.name for p in (tmp_path / "s").iterdir()}
    assert main(["diagnose", "local", "-m", "mse", str(ref_file), "--crop", "64", "--random",
                 "1", "-o", str(tmp_path / "l")]) == 0
    row = json.loads((tmp_path / "l" / "local.json").read_text())["rows"][0]
    assert row["reference_is_minimum"] and abs(row["restored_exponent"] - 2) < 0.05


def test_mad_and_eigen_cli_write_stimuli_with_a_manifest(ref_file, tmp_path, capsys):
    pytest.importorskip("plenoptic")
    assert main(["diagnose", "mad", "-m", "mse", "-m", "ssim", str(ref_file), "--crop", "32",
                 "--steps", "5", "-o", str(tmp_path / "m"), "-q"]) == 0
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["kind"] == "mad_competition" and manifest["metrics"] == ["mse", "ssim"]
    assert set(manifest["images"]) == {"min_mse", "max_mse", "min_ssim", "max_ssim"}
    for c in manifest["comparisons"]:
        for key in ("reference", "first", "second"):
            assert (tmp_path / "m" / c[key]).exists()
    capsys.readouterr()
    assert main(["diagnose", "eigen", "-m", "ssim", str(ref_file), "--crop", "24", "--max-iter",
                 "10", "-o", str(tmp_path / "e"), "-q"]) == 0
    manifest = json.loads((tmp_path / "e" / "manifest.json").read_text())
    assert set(manifest["images"]) == {"top", "bottom"}
    assert (tmp_path / "e" / "reference_plus_top.png").exists()
    out = capsys.readouterr().out
    assert "Stop criterion" not in out and "eigenvalue" in out  # plenoptic's prints: the log


@pytest.mark.parametrize("argv, message", [
    (["eigen", "-m", "l1", "--crop", "32"], "optiqa: error: l1 has no usable Hessian"),
    (["recovery"], "at least one metric"),
    (["recovery", "-m", "mse", "--starts", "noise,grey"], "unknown initial image"),
    (["mad", "-m", "mse"], "exactly two metrics"),
    (["local", "-m", "mse", "--crop", "500"], "does not fit"),
])
def test_diagnose_errors_are_one_line(ref_file, capsys, argv, message):
    assert main(["diagnose", argv[0], str(ref_file), *argv[1:]]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_diagnose_help_does_not_import_torch(tmp_path):
    code = ("import sys; from optiqa.cli import build_parser; p = build_parser()\n"
            "try:\n    p.parse_args(['diagnose', 'recovery', '--help'])\n"
            "except SystemExit:\n    pass\n"
            "print('torch' in sys.modules, 'matplotlib' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=ENV, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "--classical" in r.stdout and r.stdout.strip().endswith("False False")


def test_spectrum_at_a_given_restored_image(ref_file, tmp_path, capsys):
    from optiqa.data.distortions import distort

    restored = tmp_path / "restored.png"
    write_image(restored, distort(load_sample("chelsea", 80), "jpeg", 3))
    assert main(["diagnose", "spectrum", "-m", "mse", str(ref_file), "--restored",
                 str(restored), "-o", str(tmp_path / "s")]) == 0
    assert f"restored image {restored}" in capsys.readouterr().out
    small = tmp_path / "small.png"
    write_image(small, load_sample("chelsea", 40))
    assert main(["diagnose", "local", "-m", "mse", str(ref_file), "--restored", str(small)]) == 2
    assert "differs from the reference" in capsys.readouterr().err
