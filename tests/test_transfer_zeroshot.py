"""Zero-shot scoring: fixed crops, mean logit, sign convention, loading a run's discriminator."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from optiqa.data import synthetic
from optiqa.data.io import read_image
from optiqa.core.errors import ConfigError, InputError
from optiqa.nets import create_discriminator
from optiqa.core.store import ResultsStore
from optiqa.transfer.zeroshot import (crop_positions, load_discriminator, run_zero_shot,
                                      zero_shot_scores)

NET_D = {"type": "patchgan", "ndf": 8, "n_layers": 2}


@pytest.fixture(scope="module")
def blur_set(tmp_path_factory):
    return synthetic.load_synthetic(cache=tmp_path_factory.mktemp("syn"), size=48,
                                    photos=["astronaut", "coffee", "chelsea"],
                                    distortions=["gaussian_blur"])


def _run(folder, network_d=NET_D, gt_size=32, seed=0):
    torch.manual_seed(seed)
    d = create_discriminator(**network_d)
    (folder / "models").mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(
        {"name": folder.name, "network_d": network_d, "datasets": {"train": {"gt_size": gt_size}}}))
    torch.save({"params": d.state_dict()}, folder / "models" / "net_d_7.pth")
    return folder, d.eval()


def test_crop_positions_cover_corners_and_centre():
    assert crop_positions(100, 60, 20) == [(t, s) for t in (0, 40, 80) for s in (0, 20, 40)]
    assert crop_positions(32, 32, 32) == [(0, 0)]       # the whole image once
    assert crop_positions(50, 40, 30, grid=1) == [(10, 5)]
    assert len(crop_positions(64, 64, 32, grid=4)) == 16
    with pytest.raises(InputError, match="larger"):
        crop_positions(20, 40, 30)
    with pytest.raises(ConfigError):
        crop_positions(40, 40, 20, grid=0)


class Sharpness(torch.nn.Module):
    """A stand-in 'discriminator' whose logit is high-frequency energy (higher = sharper)."""

    level = "image"

    def forward(self, x):
        k = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]]).view(1, 1, 3, 3)
        return F.conv2d(x.mean(1, keepdim=True), k).abs().mean((1, 2, 3))


def test_higher_logit_means_better_quality(blur_set):
    scores = zero_shot_scores(Sharpness(), [it.dist for it in blur_set.items], crop=24)
    from optiqa.transfer.protocol import evaluate
    st = evaluate(scores, blur_set)
    # blur lowers the 'realness' logit; the level is lower-better: positive SRCC = agreement
    assert st["srcc"] == pytest.approx(1.0)


def test_score_is_the_mean_logit_over_the_crops(blur_set, tmp_path):
    run, d = _run(tmp_path / "pg")
    model, ckpt = load_discriminator(run)
    assert ckpt.iteration == 7 and ckpt.gt_size == 32 and model.level == "patch"
    path = blur_set.items[4].dist
    got = zero_shot_scores(model, [path], crop=32)[0]
    x = read_image(path)
    crops = torch.stack([x[:, t:t + 32, s:s + 32] for t in (0, 8, 16) for s in (0, 8, 16)])
    with torch.no_grad():
        expected = float(d(crops).mean())
    assert got == pytest.approx(expected, rel=1e-5)


def test_run_zero_shot_and_store(blur_set, tmp_path):
    run, d = _run(tmp_path / "pg")
    store = ResultsStore(tmp_path / "study")
    r = run_zero_shot(run, blur_set, n_boot=50, store=store)
    assert r["crop"] == 32 and r["grid"] == 3 and r["evaluation"] == "within"
    # the saved discriminator's own logits at the run's crop size, correlated (higher = better)
    from optiqa.transfer.protocol import evaluate
    scores = zero_shot_scores(d, [it.dist for it in blur_set.items], crop=32)
    expected = evaluate(scores, blur_set, n_boot=50, seed=0)   # run_zero_shot's n_boot, seed
    assert r["srcc"] == pytest.approx(expected["srcc"], abs=1e-12)
    lo, hi = r["srcc_ci"]     # the bootstrap interval of those scores' SRCC
    assert [lo, hi] == pytest.approx(expected["srcc_ci"], abs=1e-12) and -1 <= lo <= hi <= 1
    assert "higher = judged more real = better quality" in r["sign_note"]
    assert store.get_result("transfer", r["key"])["srcc"] == r["srcc"]
    again = run_zero_shot(run, blur_set, n_boot=50, store=store)
    assert again["from_store"] and again["srcc"] == r["srcc"]
    other = run_zero_shot(run, blur_set, n_boot=50, crop=40, store=store)
    assert not other["from_store"] and other["crop"] == 40
    store.close()


def test_backbone_discriminator_zero_shot_needs_no_pretrained_weights(blur_set, tmp_path):
    net = {"type": "backbone", "backbone": "effnet_lite0", "head": "image", "pretrained": False}
    run, d = _run(tmp_path / "bb", network_d=net)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["network_d"]["pretrained"] = True  # as a real config says; weights come from the file
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    model, _ = load_discriminator(run)
    for k, v in d.state_dict().items():
        assert torch.equal(model.state_dict()[k], v)
    scores = zero_shot_scores(model, [it.dist for it in blur_set.items[:3]], crop=32)
    assert np.isfinite(scores).all()


def test_zero_shot_errors(tmp_path):
    run, _ = _run(tmp_path / "pg")
    (run / "config.yaml").unlink()
    with pytest.raises(ConfigError, match="config.yaml"):
        load_discriminator(run)
    run2, _ = _run(tmp_path / "pg2")
    cfg = yaml.safe_load((run2 / "config.yaml").read_text())
    cfg["network_d"]["ndf"] = 16  # the checkpoint holds ndf=8
    (run2 / "config.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match="does not fit discriminator 'patchgan'"):
        load_discriminator(run2)


def test_crops_of_several_images_go_through_together_with_the_same_scores(blur_set, tmp_path):
    from optiqa.data.io import write_image

    _, d = _run(tmp_path / "pg")
    # images of two sizes, interleaved: 1 crop each (32 px) and 9 crops each (48 px)
    paths = []
    for i, it in enumerate(blur_set.items[:6]):
        x = read_image(it.dist)
        if i % 3 == 0:
            x = x[:, :32, :32]
            paths.append(tmp_path / f"{i}.png")
            write_image(paths[-1], x)
        else:
            paths.append(it.dist)
    one = zero_shot_scores(d, paths, crop=32, batch_crops=1)   # one image per call
    together = zero_shot_scores(d, paths, crop=32)             # up to 32 crops per call
    eleven = zero_shot_scores(d, paths, crop=32, batch_crops=11)
    expected = []
    with torch.no_grad():
        for p in paths:
            x = read_image(p)
            n = 1 if x.shape[-1] == 32 else 3
            crops = torch.stack([x[:, t:t + 32, s:s + 32] for t in (0, 8, 16)[:n]
                                 for s in (0, 8, 16)[:n]])
            expected.append(float(d(crops).mean()))
    assert one == pytest.approx(expected, rel=1e-6)
    assert together == pytest.approx(one, rel=1e-5, abs=1e-6)  # float rounding of the batch
    assert together == pytest.approx(eleven, rel=1e-5, abs=1e-6)


def test_crops_are_decoded_once_per_file_state_with_the_same_scores(blur_set, tmp_path,
                                                                     monkeypatch):
    """Each file is decoded once per process (optiqa.data.decoded): a second scoring reads no
    file and gives the same scores bit for bit; a rewritten file is read again."""
    from optiqa.data import decoded
    from optiqa.data.io import write_image
    from optiqa.transfer import zeroshot

    decoded.clear()
    _, d = _run(tmp_path / "pg")
    paths = []
    for i, it in enumerate(blur_set.items[:4]):
        paths.append(tmp_path / f"{i}.png")
        write_image(paths[-1], read_image(it.dist))
    reads = []
    monkeypatch.setattr(decoded.io, "read_image", lambda p: reads.append(p) or read_image(p))
    cold = zero_shot_scores(d, paths, crop=32)
    assert len(reads) == 4
    warm = zero_shot_scores(d, paths, crop=32)
    assert len(reads) == 4                     # nothing read again
    assert np.array_equal(cold, warm)          # bit for bit
    for p in paths:                            # the crops are the file's own pixels
        assert torch.equal(zeroshot.image_crops(p, 32)[0], read_image(p)[:, :32, :32])
    # the first file rewritten with other pixels: read again, its score follows the new pixels
    write_image(paths[0], read_image(blur_set.items[5].dist))
    again = zero_shot_scores(d, paths, crop=32)
    assert len(reads) == 5
    assert np.array_equal(again[1:], cold[1:])
    decoded.clear()
    assert np.array_equal(zero_shot_scores(d, paths, crop=32), again)
    decoded.clear()
