"""SR task data: MATLAB bicubic, degradations, train/test datasets, determinism, config errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import shared_path
from optiqa.data.io import read_image
from optiqa.ops.resize import cubic, imresize, torch_bicubic
from optiqa.data.datasets import build_sr_dataset as build_dataset
from optiqa.data.task_datasets import (IterationBatchSampler, SRTestDataset, SRTrainDataset,
                            create_train_loader, mod_crop)
from optiqa.data.task_degradations import (BicubicDownscale, GaussianNoise, JPEGCompression,
                                         create_degradation)
from optiqa.core.errors import ConfigError, UnknownNameError
from optiqa.metrics.pixel import psnr


def _write(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def _rand_u8(h, w, seed, grey=False):
    rng = np.random.default_rng(seed)
    # smooth content so that bicubic rounding is typical of photos
    base = rng.integers(0, 256, size=(h // 8 + 2, w // 8 + 2, 1 if grey else 3)).astype(np.uint8)
    img = Image.fromarray(base[..., 0] if grey else base).resize((w, h), Image.BILINEAR)
    return np.asarray(img)


# ---------------------------------------------------------------- resize
def test_cubic_kernel_known_values():
    x = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 2.5])
    # Keys a=-0.5: k(0)=1, k(0.5)=0.5625, k(1)=0, k(1.5)=-0.0625, k(2)=0
    assert torch.allclose(cubic(x), torch.tensor([1.0, 0.5625, 0.0, -0.0625, 0.0, 0.0]))


def test_imresize_preserves_constants_and_linear_ramps():
    const = torch.full((1, 3, 20, 24), 0.3)
    assert torch.allclose(imresize(const, 1 / 4), torch.full((1, 3, 5, 6), 0.3), atol=1e-6)
    assert imresize(const, 2.0).shape == (1, 3, 40, 48)
    # a linear ramp stays linear away from the borders; the LR pixel centre of output i
    # (0-based) is at input position 4 i + 1.5
    ramp = torch.arange(64, dtype=torch.float64).repeat(1, 1, 8, 1) / 64
    lr = imresize(ramp, 1 / 4)
    expected = (4 * torch.arange(16, dtype=torch.float64) + 1.5) / 64
    assert torch.allclose(lr[0, 0, 0, 2:-2], expected[2:-2], atol=1e-12)


def test_imresize_matches_matlab_lr_files_of_set5():
    root = shared_path("sr", "Set5")
    for hr_path in sorted((root / "HR").glob("*.png")):
        hr = read_image(hr_path)[None].double()
        lr = read_image(root / "LR_bicubic" / "X4" / hr_path.name)[None].double()
        ours = imresize(hr, 1 / 4, round_uint8=True)
        assert ours.shape == lr.shape
        # away from the 3-pixel border (the release cut its LR borders from larger images)
        diff = (ours - lr)[..., 3:-3, 3:-3].abs().mul(255).round()
        assert diff.max() <= 1, hr_path.name
        assert (diff > 0).float().mean() < 1e-3, hr_path.name
        inner = psnr(ours[..., 3:-3, 3:-3].float(), lr[..., 3:-3, 3:-3].float()).item()
        torch_inner = psnr(torch_bicubic(hr, 1 / 4).clamp(0, 1)[..., 3:-3, 3:-3].float(),
                           lr[..., 3:-3, 3:-3].float()).item()
        assert inner > 75 and torch_inner < inner, (inner, torch_inner)


# ---------------------------------------------------------------- degradations
def test_create_degradation_specs_and_errors():
    assert isinstance(create_degradation(None, 4), BicubicDownscale)
    assert create_degradation("bicubic", 3).scale == 3
    d = create_degradation({"type": "gaussian_noise", "sigma": 15}, 1)
    assert isinstance(d, GaussianNoise) and d.sigma == 15
    assert isinstance(create_degradation({"type": "jpeg", "quality": 30}, 1), JPEGCompression)
    with pytest.raises(UnknownNameError, match="blur"):
        create_degradation("blur", 4)
    with pytest.raises(ConfigError, match="scale: 1"):
        create_degradation("jpeg", 4)
    with pytest.raises(ConfigError, match="sigmaa"):
        create_degradation({"type": "gaussian_noise", "sigmaa": 3}, 1)
    with pytest.raises(ConfigError, match="resize"):
        create_degradation({"type": "bicubic", "resize": "lanczos"}, 4)


def test_noise_and_jpeg_degradations():
    gt = torch.rand(1, 3, 32, 32)
    noise = GaussianNoise(sigma=25)
    a = noise(gt, torch.Generator().manual_seed(3))
    b = noise(gt, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert abs((a - gt).std().item() - 25 / 255) < 0.01
    jp = JPEGCompression(quality=10)(gt)
    assert jp.shape == gt.shape and 0 < (jp - gt).abs().mean() < 0.3


# ---------------------------------------------------------------- train dataset
def test_train_items_deterministic_and_shaped():
    ds = SRTrainDataset("builtin:samples/96", scale=4, gt_size=32, seed=7)
    a, b = ds[5], ds[5]
    assert torch.equal(a["gt"], b["gt"]) and torch.equal(a["lq"], b["lq"])
    assert a["gt"].shape == (3, 32, 32) and a["lq"].shape == (3, 8, 8)
    other = SRTrainDataset("builtin:samples/96", scale=4, gt_size=32, seed=8)
    assert any(not torch.equal(ds[k]["gt"], other[k]["gt"]) for k in range(4))
    # each pass over n samples visits every image once
    n = len(ds)
    assert sorted(ds.image_index(k) for k in range(n, 2 * n)) == list(range(n))


@pytest.mark.parametrize("resize", ["matlab", "torch"])
def test_degrading_a_crop_equals_cropping_the_degraded_image(resize):
    ds = SRTrainDataset("builtin:samples/100", scale=4, gt_size=32, seed=1, use_flip=False,
                        use_rot=False, degradation={"type": "bicubic", "resize": resize})
    for k in range(12):
        item = ds[k]
        top, left = item["origin"]
        full_gt = mod_crop(ds.gt.load(ds.image_index(k)), 4)
        assert torch.equal(item["gt"], full_gt[:, top:top + 32, left:left + 32])
        full_lq = ds.degradation(full_gt[None])[0]
        crop = full_lq[:, top // 4:top // 4 + 8, left // 4:left // 4 + 8]
        assert torch.allclose(item["lq"], crop, atol=1e-6), k


def test_augmentations_are_dihedral_and_shared():
    plain = SRTrainDataset("builtin:samples/64", scale=2, gt_size=16, seed=3, use_flip=False,
                           use_rot=False)
    aug = SRTrainDataset("builtin:samples/64", scale=2, gt_size=16, seed=3)
    changed = 0
    for k in range(16):
        p, a = plain[k], aug[k]
        variants = [p["gt"]]
        for t in (lambda x: x.flip(-1), lambda x: x.flip(-2), lambda x: x.transpose(-2, -1)):
            variants += [t(v) for v in variants]
        idx = next(i for i, v in enumerate(variants) if torch.equal(v, a["gt"]))
        lq_variants = [p["lq"]]
        for t in (lambda x: x.flip(-1), lambda x: x.flip(-2), lambda x: x.transpose(-2, -1)):
            lq_variants += [t(v) for v in lq_variants]
        assert torch.equal(lq_variants[idx], a["lq"])
        changed += idx != 0
    assert changed > 0


def test_sampler_and_loader_reproduce_from_seed_and_iteration():
    ds = SRTrainDataset("builtin:samples/64", scale=4, gt_size=16, seed=0)
    assert IterationBatchSampler.indices(3, 4) == [12, 13, 14, 15]
    assert IterationBatchSampler.indices(3, 4, rank=1, world_size=2) == [28, 29, 30, 31]
    full = list(create_train_loader(ds, batch_size=3, total_iter=6))
    resumed = list(create_train_loader(ds, batch_size=3, start_iter=4, total_iter=6,
                                       num_workers=1))
    assert len(full) == 6 and len(resumed) == 2
    for x, y in zip(full[4:], resumed):
        assert torch.equal(x["gt"], y["gt"]) and torch.equal(x["lq"], y["lq"])
    direct = ds.batch(5, 3)
    assert torch.equal(direct["lq"], full[5]["lq"])


def test_paired_folder_greyscale_recursive_and_errors(tmp_path):
    hr_dir, lr_dir = tmp_path / "HR", tmp_path / "LR"
    _write(hr_dir / "a" / "0001.png", _rand_u8(48, 40, 1))
    _write(hr_dir / "b" / "0002.bmp", _rand_u8(50, 42, 2, grey=True))  # not a multiple of 4
    _write(hr_dir / "0003.jpg", _rand_u8(40, 40, 3))
    for name, scale_name in (("a/0001", "a/0001x4"), ("b/0002", "b/0002"), ("0003", "0003x4")):
        hr = mod_crop(read_image(next(hr_dir.glob(name + ".*")))[None], 4)
        lr = imresize(hr, 1 / 4, round_uint8=True)[0]
        _write(lr_dir / f"{scale_name}.png",
               (lr.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    ds = SRTrainDataset(hr_dir, scale=4, gt_size=32, dataroot_lq=lr_dir, seed=0)
    assert ds.gt.keys == ["0003", "a/0001", "b/0002"]
    for k in range(6):
        item = ds[k]
        assert item["gt"].shape == (3, 32, 32) and item["lq"].shape == (3, 8, 8)
    grey = ds.gt.load(ds.gt.keys.index("b/0002"))
    assert grey.shape[0] == 3 and torch.equal(grey[0], grey[1])
    # the paired LR equals the bicubic made on the fly for the same crop
    fly = SRTrainDataset(hr_dir, scale=4, gt_size=32, seed=0)
    for k in range(6):
        assert torch.allclose(ds[k]["lq"], fly[k]["lq"], atol=1.5 / 255)

    with pytest.raises(ConfigError, match=r"gt_size 48 is larger than image .*0003\.jpg"):
        SRTrainDataset(hr_dir, scale=4, gt_size=48)
    _write(lr_dir / "0003x4.png", _rand_u8(12, 11, 4))
    with pytest.raises(ConfigError, match=r"0003x4\.png: LR size 11x12 times scale 4"):
        SRTrainDataset(hr_dir, scale=4, gt_size=32, dataroot_lq=lr_dir)
    (lr_dir / "0003x4.png").unlink()
    with pytest.raises(ConfigError, match=r"0003\.jpg: no LR image"):
        SRTrainDataset(hr_dir, scale=4, gt_size=32, dataroot_lq=lr_dir)
    with pytest.raises(ConfigError, match="not found"):
        SRTrainDataset(tmp_path / "missing", scale=4, gt_size=32)


def test_build_dataset_from_config_mapping():
    ds = build_dataset({"dataroot_gt": "builtin:samples/64", "gt_size": 16, "batch_size": 4,
                        "use_flip": True, "use_rot": False, "num_worker": 0}, scale=2, seed=1)
    assert isinstance(ds, SRTrainDataset) and ds.gt_size == 16 and not ds.use_rot
    val = build_dataset({"dataroot_gt": "builtin:samples/64"}, scale=2, train=False)
    assert isinstance(val, SRTestDataset)
    with pytest.raises(ConfigError, match="gt_sise"):
        build_dataset({"dataroot_gt": "builtin:samples", "gt_sise": 16}, scale=4)


# ---------------------------------------------------------------- test dataset
def test_test_dataset_mod_crops_and_is_deterministic():
    ds = SRTestDataset("builtin:samples", scale=3)
    item = ds[ds.gt.keys.index("chelsea")]  # 300 x 451
    assert item["gt"].shape == (3, 300, 450) and item["lq"].shape == (3, 100, 150)
    noisy = SRTestDataset("builtin:samples/48", scale=1,
                          degradation={"type": "gaussian_noise", "sigma": 50})
    assert torch.equal(noisy[0]["lq"], noisy[0]["lq"])
    assert not torch.equal(noisy[0]["lq"] - noisy[0]["gt"], noisy[1]["lq"] - noisy[1]["gt"])


def test_test_dataset_on_set5_layout():
    root = shared_path("sr", "Set5")
    ds = SRTestDataset(root, scale=4)
    assert len(ds) == 5 and "LR_bicubic" in ds.lq_source
    item = ds[0]
    assert item["gt"].shape[-2:] == tuple(4 * s for s in item["lq"].shape[-2:])
    made = SRTestDataset(root / "HR", scale=4)
    assert "on the fly" in made.lq_source
    assert made[0]["lq"].shape == item["lq"].shape


@pytest.mark.parametrize("dataset", [SRTrainDataset, SRTestDataset])
def test_lr_folder_and_degradation_together_is_an_error(dataset, tmp_path):
    from optiqa.core.errors import ConfigError

    with pytest.raises(ConfigError, match="either dataroot_lq or a degradation"):
        dataset("builtin:samples", scale=4, dataroot_lq=str(tmp_path),
                degradation=BicubicDownscale(4))
