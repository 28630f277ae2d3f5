"""`optiqa transfer` on the built-in set, offline; a discriminator trained by `optiqa train`."""
import json
from pathlib import Path

import pytest
import torch

from optiqa.cli import main
from optiqa.core.store import ResultsStore
from optiqa.transfer.init import create_backbone

TINY = Path(__file__).resolve().parents[1] / "configs" / "train" / "tiny_cpu.yaml"
BASE = ["transfer", "-q", "-d", "synthetic", "--size", "32", "--workers", "0"]


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("OPTIQA_CACHE", str(tmp_path_factory.getbasetemp() / "optiqa-cache"))


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A run of the tiny CPU config with a backbone discriminator, two iterations long."""
    study = tmp_path_factory.mktemp("study")
    overrides = ["network_d={type: backbone, backbone: effnet_lite0, head: patch, "
                 "pretrained: false}", "train.total_iter=2", "train.pixel_only_iter=0",
                 "train.warmup_iter=0", "logger.save_checkpoint_freq=2",
                 "val.val_freq=100", "datasets.train.batch_size=2"]
    assert main(["train", str(TINY), *overrides, "--study", str(study), "--device", "cpu",
                 "-q"]) == 0
    run = study / "runs" / "tiny_cpu"
    assert (run / "models" / "net_d_2.pth").is_file()
    return run


def test_transfer_on_the_builtin_set(tmp_path, capsys):
    out = tmp_path / "r.json"
    args = BASE + ["--backbone", "effnet_lite0", "--init", "imagenet", "--kind", "nr",
                   "--repeats", "2", "--epochs", "3", "--json", str(out), "--store",
                   str(tmp_path / "study")]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "synthetic known-order set, not human opinion" in text
    assert "higher = better" in text and "SRCC mean" in text and "held-out contents" in text
    r = json.loads(out.read_text())
    assert r["test"]["srcc"]["n"] == 2 and r["init"] == "imagenet" and r["head"] == "linear"
    with ResultsStore(tmp_path / "study") as store:
        assert store.get_result("transfer", r["key"])["test"] == r["test"]
    assert main(args) == 0
    assert "from the store" in capsys.readouterr().out


@pytest.mark.parametrize("extra,message", [
    (["--backbone", "effnet_lite0", "--init", "imagenet21k", "--kind", "nr"],
     "init must be random, imagenet or gan"),
    (["--backbone", "effnet_lite0", "--init", "imagenet"], "missing: --kind"),
    (["--backbone", "resnet5", "--init", "random", "--kind", "nr"], "unknown backbone"),
    (["--backbone", "effnet_lite0", "--init", "gan:/nonexistent/run", "--kind", "nr"],
     "no such run folder"),
    (["--backbone", "effnet_lite0", "--init", "random", "--kind", "nr", "--repeats", "0"],
     "repeats must be at least 1, got 0 (set with --repeats)"),
    (["--zero-shot", "/nonexistent", "--backbone", "effnet_lite0"], "do not apply"),
    (["--backbone", "effnet_lite0", "--init", "random", "--kind", "nr", "--cross", "koniq10k"],
     "--cross koniq10k=ROOT"),
])
def test_bad_input_is_one_line_and_exit_2(extra, message, capsys):
    assert main(BASE + extra) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("optiqa: error:") and message in err and "\n" not in err


def test_gan_init_from_a_trained_run(trained_run, tmp_path, capsys):
    state = torch.load(trained_run / "models" / "net_d_2.pth", weights_only=True)["params"]
    bb, info = create_backbone("effnet_lite0", f"gan:{trained_run}")
    for k, v in bb.state_dict().items():
        assert torch.equal(v, state["backbone." + k]), k
    assert info["iteration"] == 2 and info["network_d"]["backbone"] == "effnet_lite0"
    out = tmp_path / "gan.json"
    assert main(BASE + ["--backbone", "effnet_lite0", "--init", f"gan:{trained_run}",
                        "--kind", "fr", "--repeats", "1", "--epochs", "2", "--json",
                        str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["init_info"]["run"] == "tiny_cpu" and r["kind"] == "fr"
    assert main(BASE + ["--backbone", "vgg16_r", "--init", f"gan:{trained_run}", "--kind",
                        "nr"]) == 2
    assert "trained with backbone 'effnet_lite0'" in capsys.readouterr().err


def test_zero_shot_with_a_trained_run(trained_run, tmp_path, capsys):
    out = tmp_path / "z.json"
    assert main(BASE + ["--zero-shot", str(trained_run), "--bootstrap", "0", "--json",
                        str(out)]) == 0
    text = capsys.readouterr().out
    assert "higher = judged more real = better quality" in text
    r = json.loads(out.read_text())
    assert r["zero_shot"] and r["level"] == "patch"
    assert r["crop"] == 64  # the run's gt_size (each crop at most the 32px image side)
    assert r["n"] == 360
    # the known answer, recomputed here: the run's discriminator scores every image (mean logit
    # over its grid of crops), then the mean over (content, distortion) strata of scipy's
    # Spearman rho against the levels turned higher = better (unchanged images left out; a
    # stratum of tied scores counts as 0, as in optiqa.stats.correlation.summarize_within)
    from scipy import stats

    from optiqa.data.datasets import load_dataset
    from optiqa.transfer.zeroshot import load_discriminator, zero_shot_scores

    data = load_dataset("synthetic", size=32)
    model, _ = load_discriminator(trained_run)
    scores = zero_shot_scores(model, [it.dist for it in data.items], crop=64, grid=r["grid"])
    assert r["score_mean"] == pytest.approx(float(scores.mean()), rel=1e-6)
    quality = -data.scores if data.spec.lower_better else data.scores
    rhos = []
    for stratum in sorted(set(data.strata)):
        idx = [i for i, (s, it) in enumerate(zip(data.strata, data.items))
               if s == stratum and not it.extra.get("static")]
        if len(idx) < 2 or len(set(quality[idx])) < 2:
            continue
        rhos.append(0.0 if len(set(scores[idx])) < 2 else stats.spearmanr(scores[idx],
                                                                             quality[idx])[0])
    assert r["strata_used"] == len(rhos) > 0
    assert r["srcc"] == pytest.approx(sum(rhos) / len(rhos), abs=1e-9)
