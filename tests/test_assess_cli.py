"""`optiqa assess`: tables, JSON/CSV, the store cache, published figures, one-line errors."""
import csv
import json
import os
import subprocess
import sys

import pytest

from optiqa.assess import benchmark
from optiqa.cli import main
from optiqa.cli.assess import weights_options
from optiqa.data.distortions import distort
from optiqa.data.io import write_image
from optiqa.data.samples import load_sample

from clitools import one_error_line, run_main

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
KINDS = ("gaussian_blur", "gaussian_noise", "jpeg")


@pytest.fixture(scope="module")
def fake_csiq(tmp_path_factory):
    """A CSIQ-shaped database: src_imgs/, dst_imgs/<kind>/, CSIQ.csv (DMOS, lower = better)."""
    root = tmp_path_factory.mktemp("csiq")
    rows = []
    for p in PHOTOS:
        ref = load_sample(p, 48)
        write_image(root / "src_imgs" / f"{p}.png", ref)
        for k, kind in enumerate(KINDS):
            for level in range(1, 6):
                name = f"{p}.{kind.upper()}.{level}.png"
                write_image(root / "dst_imgs" / kind / name, distort(ref, kind, level))
                rows.append([f"{p}.png", name, round(0.15 * level + 0.05 * k, 3)])
    with open(root / "CSIQ.csv", "w", newline="") as f:
        csv.writer(f).writerows([["ref_name", "dist_name", "dmos"]] + rows)
    return root


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("OPTIQA_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def test_assess_pooled_dataset_table_json_csv(fake_csiq, tmp_path, capsys):
    j, c = tmp_path / "r.json", tmp_path / "r.csv"
    code = main(["assess", "-q", "-m", "psnr", "-m", "l1", "-d", "csiq", "--root", str(fake_csiq),
                 "--bootstrap", "100", "--workers", "2", "--json", str(j), "--csv", str(c)])
    assert code == 0
    out = capsys.readouterr().out
    assert "4-parameter logistic" in out and "positive = agrees" in out
    assert "DMOS 0-1, lower = better" in out and "bootstrap, 100 resamples" in out
    rows = json.loads(j.read_text())
    assert [r["metric"] for r in rows] == ["psnr", "l1"]
    for r in rows:
        for key in ("dataset", "metric", "n", "srcc", "krcc", "plcc", "rmse", "srcc_ci",
                    "krcc_ci", "plcc_ci", "rmse_ci"):
            assert key in r
        assert r["n"] == 60 and r["srcc"] > 0.5 and r["plcc"] > 0.5 and r["rmse"] > 0
        assert r["srcc_ci"][0] <= r["srcc"] <= r["srcc_ci"][1]
    assert rows[0]["sign"] == -1 and rows[1]["sign"] == 1  # psnr higher-better vs DMOS
    assert rows[0]["srcc"] == pytest.approx(rows[1]["srcc"], abs=0.2)
    header = c.read_text().splitlines()[0].split(",")
    assert header[:6] == ["dataset", "metric", "n", "srcc", "srcc_ci_low", "srcc_ci_high"]


def test_store_answers_a_second_run(fake_csiq, tmp_path, capsys, monkeypatch):
    args = ["assess", "-q", "-m", "psnr", "-d", "csiq", "--root", str(fake_csiq),
            "--bootstrap", "20", "--workers", "0", "--store", str(tmp_path / "study"),
            "--json", str(tmp_path / "a.json")]
    assert main(args) == 0
    first = json.loads((tmp_path / "a.json").read_text())[0]
    assert first["from_store"] == 0
    assert (tmp_path / "study" / "results.db").is_file()
    monkeypatch.setattr(benchmark, "score_items",
                        lambda *a, **k: pytest.fail("scored again instead of using the store"))
    assert main(args) == 0
    second = json.loads((tmp_path / "a.json").read_text())[0]
    assert second["from_store"] == 60 and second["srcc"] == first["srcc"]
    assert "60 of 60 scores answered from the store" in capsys.readouterr().out


def test_compare_published(fake_csiq, capsys):
    assert main(["assess", "-q", "-m", "psnr", "-d", "csiq", "--root", str(fake_csiq),
                 "--bootstrap", "0", "--workers", "0", "--compare-published"]) == 0
    out = capsys.readouterr().out
    assert "published SRCC" in out and "0.8087" in out  # IQA-PyTorch psnr on CSIQ


def test_synthetic_is_labelled_everywhere(tmp_path, capsys):
    j, c = tmp_path / "s.json", tmp_path / "s.csv"
    assert main(["assess", "-q", "-m", "psnr", "-d", "synthetic", "--size", "32",
                 "--bootstrap", "20", "--workers", "0", "--json", str(j), "--csv", str(c)]) == 0
    out = capsys.readouterr().out
    assert "NOT HUMAN OPINION" in out and "(content, distortion) groups" in out
    r = json.loads(j.read_text())[0]
    assert r["label"] == "synthetic known-order set, not human opinion"
    assert r["evaluation"] == "within" and r["srcc"] > 0.9
    assert "not human opinion" in c.read_text()


@pytest.mark.slow
def test_acceptance_ssim_psnr_on_the_synthetic_set(tmp_path):
    """`optiqa assess -m ssim -m psnr -d synthetic`: within-group SRCC >= 0.9 for both."""
    j = tmp_path / "r.json"
    assert main(["assess", "-q", "-m", "ssim", "-m", "psnr", "-d", "synthetic",
                 "--json", str(j)]) == 0
    for r in json.loads(j.read_text()):
        assert r["srcc"] >= 0.9, r


def test_allow_missing_runs_and_warns_once_per_channel(fake_csiq, tmp_path):
    """The command: the full warning once on stderr, a short factual note in the table
    header on stdout."""
    meta = tmp_path / "meta.csv"
    lines = (fake_csiq / "CSIQ.csv").read_text().splitlines()
    meta.write_text("\n".join(lines + ["astronaut.png,astronaut.GONE.1.png,0.5"]) + "\n")
    args = ["assess", "-q", "-m", "psnr", "-d", "csiq", "--root", fake_csiq, "--meta", meta,
            "--bootstrap", "0", "--workers", "0"]
    err = one_error_line(run_main(*args))
    assert "1 image(s)" in err and "(set with --allow-missing)" in err
    proc = run_main(*args, "--allow-missing")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("WARNING: missing images allowed") == 1
    assert proc.stderr.count("astronaut.GONE.1.png") == 1
    assert "missing images allowed" not in proc.stdout and "GONE" not in proc.stdout
    assert proc.stdout.count("NOTE: 60 of 61 items (1 missing their images): not comparable "
                             "with published figures") == 1


def _bad_root(kind, tmp_path, fake_csiq):
    if kind == "empty":
        (tmp_path / "empty").mkdir()
        return ["-d", "csiq", "--root", str(tmp_path / "empty")]
    if kind == "columns":
        (tmp_path / "bad.csv").write_text("name,score\nx.png,1\n")
        return ["-d", "csiq", "--root", str(fake_csiq), "--meta", str(tmp_path / "bad.csv")]
    if kind == "missing":
        (tmp_path / "m.csv").write_text("ref_name,dist_name,dmos\na.png,a.b.1.png,1\n")
        return ["-d", "csiq", "--root", str(fake_csiq), "--meta", str(tmp_path / "m.csv")]
    if kind == "dataset":
        return ["-d", "tid2099", "--root", str(fake_csiq)]
    if kind == "nr":
        (tmp_path / "k.csv").write_text("img_name,mos,std,split\nastronaut.png,50,1,test\n")
        return ["-d", "koniq10k", "--root", str(fake_csiq), "--meta", str(tmp_path / "k.csv")]
    raise AssertionError(kind)


@pytest.mark.parametrize("kind, message", [
    ("empty", "no image files"), ("columns", "wrong columns"), ("missing", "not found under"),
    ("dataset", "unknown dataset 'tid2099'"), ("nr", "no-reference"),
])
def test_bad_input_is_one_line_exit_2(kind, message, tmp_path, fake_csiq, capsys):
    code = main(["assess", "-q", "-m", "psnr", "--workers", "0",
                 *_bad_root(kind, tmp_path, fake_csiq)])
    err = capsys.readouterr().err
    assert code == 2 and message in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("optiqa: error:")


def test_unknown_metric_exits_2_in_a_real_process(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OPTIQA_CACHE": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "optiqa.cli", "assess", "-m", "psnrr", "-d",
                           "synthetic"], capture_output=True, text=True, env=env)
    assert proc.returncode == 2
    assert "unknown metric 'psnrr'" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "synthetic").exists()  # failed before generating any data


def test_weights_option_needs_a_dists_metric(capsys):
    assert main(["assess", "-m", "psnr", "-d", "synthetic", "--weights", "w.pt"]) == 2
    assert "no DISTS-style metric" in capsys.readouterr().err


def test_weights_option_parsing():
    opts = weights_options(["w.pt"], ["psnr", "dists_vgg16_r", "dists_resnet50"])
    assert opts == {"dists_vgg16_r": {"weights": "w.pt"}, "dists_resnet50": {"weights": "w.pt"}}
    opts = weights_options(["dists_resnet50=r.pt"], ["dists_vgg16_r", "dists_resnet50"])
    assert opts == {"dists_resnet50": {"weights": "r.pt"}}
    with pytest.raises(Exception, match="not among"):
        weights_options(["dists_x=a.pt"], ["dists_vgg16_r"])


def test_fast_pixel_path_equals_read_image(tmp_path):
    import numpy as np
    import torch
    from PIL import Image

    from optiqa.data.io import as_float, read_pixels
    from optiqa.data.io import read_image

    rgb = np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    Image.fromarray(rgb).save(tmp_path / "a.bmp")
    Image.fromarray(rgb[:, :, 0]).save(tmp_path / "g.png")
    Image.fromarray((rgb[:, :, 0].astype(np.uint16) * 257)).save(tmp_path / "g16.png")
    Image.fromarray(rgb).quantize(100).save(tmp_path / "palette8.png")  # 8-bit palette
    Image.fromarray(rgb).quantize(16).save(tmp_path / "palette4.png")  # 4-bit palette
    opaque = np.concatenate([rgb, np.full((12, 10, 1), 255, np.uint8)], axis=2)
    Image.fromarray(opaque).save(tmp_path / "rgba_opaque.png")
    Image.fromarray(rgb[:, :, 0] > 127).save(tmp_path / "bilevel.png")  # 1-bit greyscale
    # uint8 where the fast path decodes; float from read_image for everything else
    dtypes = {"a.png": torch.uint8, "a.bmp": torch.uint8, "g.png": torch.uint8,
              "g16.png": torch.float32, "palette8.png": torch.float32,
              "palette4.png": torch.float32, "rgba_opaque.png": torch.float32,
              "bilevel.png": torch.float32}
    for name, dtype in dtypes.items():
        fast = read_pixels(tmp_path / name)
        assert fast.dtype == dtype, name
        assert fast.shape == (3, 12, 10), name
        assert torch.equal(as_float(fast), read_image(tmp_path / name)), name


def test_fast_pixel_path_gives_read_image_errors(tmp_path):
    """Files the fast path cannot take get read_image's one-line errors, not a decoder's."""
    import numpy as np
    from PIL import Image

    from optiqa.data.io import read_pixels
    from optiqa.core.errors import InputError

    rgba = np.zeros((8, 8, 4), np.uint8)  # fully transparent
    Image.fromarray(rgba).save(tmp_path / "clear.png")
    with pytest.raises(InputError, match="clear.png: has an alpha channel with 64 transparent"):
        read_pixels(tmp_path / "clear.png")
    Image.fromarray(rgba[:, :, :3]).save(tmp_path / "cut.png")
    data = (tmp_path / "cut.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[:len(data) // 2])  # a truncated download
    with pytest.raises(InputError, match="cut.png"):
        read_pixels(tmp_path / "cut.png")


def test_keyed_batches_group_by_key_in_input_order():
    """Full buckets as they fill, then the rest; sorted by first index (size and reference
    batches of the benchmark and of the transfer features both come from this)."""
    from optiqa.assess.batches import keyed_batches

    keys = ["a", "b", "a", "a", "c", "b", "a"]
    assert keyed_batches(keys, 2) == [[0, 2], [1, 5], [3, 6], [4]]
    assert keyed_batches(keys, 10) == [[0, 2, 3, 6], [1, 5], [4]]
    assert keyed_batches(keys, 1) == [[i] for i in range(7)]
    assert keyed_batches([], 3) == []


def test_workers_give_the_same_scores_as_the_main_process(fake_csiq):
    from optiqa.data.iqa import load_dataset
    from optiqa.metrics import create_metric

    ds = load_dataset("csiq", root=fake_csiq)
    metrics = {"psnr": create_metric("psnr"), "ssim": create_metric("ssim")}
    a = benchmark.score_items(metrics, ds.items, workers=0, batch_size=5, progress=False)
    b = benchmark.score_items(metrics, ds.items, workers=2, batch_size=5, progress=False)
    for name in metrics:
        assert (a[name] == b[name]).all()


def test_corrupt_image_in_a_worker_is_a_one_line_error(fake_csiq, tmp_path, capsys):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(fake_csiq, root)
    victim = root / "dst_imgs" / "jpeg" / "coffee.JPEG.3.png"
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])  # header intact, pixels cut off
    code = main(["assess", "-q", "-m", "psnr", "-d", "csiq", "--root", str(root),
                 "--bootstrap", "0", "--workers", "2"])
    err = capsys.readouterr().err
    assert code == 2 and "coffee.JPEG.3.png" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
