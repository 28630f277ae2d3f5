"""Frozen-backbone (linear probe) training: cached descriptors against recomputing them, one run.

Both paths train the same head on the same split of the built-in known-order set for exactly
``--epochs`` epochs (early stopping disabled: patience = epochs), with the same seeds:

- cached (what ``optiqa transfer --mode frozen`` does): every image's descriptor is extracted
  once (:func:`optiqa.transfer.features.extract`), then every epoch indexes the cached matrix;
- recomputed: the backbone runs on each batch's images in every epoch (and once more on the
  training images for the head's input standardisation, as the cached path does from its matrix),
  as a training loop without the cache would.

Prints the wall time of each path, their ratio (the speed-up), the feature-extraction throughput
(images/s) and checks that both paths reach the same model (validation and test SRCC, largest
difference of the test predictions), since they see the same numbers. ``--device cuda`` measures
on a GPU.

    python bench/transfer_speed.py                        # CPU, effnet_lite0, 10 epochs
    python bench/transfer_speed.py --device cuda --size 384
"""
from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from optiqa.data.synthetic import load_synthetic  # noqa: E402
from optiqa.transfer.experiment import TransferOptions  # noqa: E402
from optiqa.transfer.features import extract  # noqa: E402
from optiqa.transfer.fitting import TrainSettings, fit_head, recomputed  # noqa: E402
from optiqa.transfer.init import create_backbone  # noqa: E402
from optiqa.transfer.models import create_model  # noqa: E402
from optiqa.transfer.protocol import evaluate, repeat_splits, subset  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbone", default="effnet_lite0")
    p.add_argument("--init", default="imagenet")
    p.add_argument("--kind", default="nr", choices=["nr", "fr"])
    p.add_argument("--size", type=int, default=128, help="known-order set picture size")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32, help="items per optimisation step")
    p.add_argument("--eval-batch-size", type=int, default=16, help="images per backbone pass")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)

    ds = load_synthetic(size=a.size)
    opts = TransferOptions(a.backbone, a.init, a.kind, "frozen", repeats=1)
    settings = TrainSettings(epochs=a.epochs, patience=a.epochs, batch_size=a.batch_size,
                             device=a.device, eval_batch_size=a.eval_batch_size)
    split = repeat_splits(ds, 1, opts.test_fraction, opts.val_fraction, 0)[0]
    backbone, _ = create_backbone(a.backbone, a.init)
    backbone = backbone.to(a.device).requires_grad_(False)

    def model():
        torch.manual_seed(split.seed)
        return create_model(a.kind, backbone, opts.resolved_head).to(a.device)

    test_ds = subset(ds, split.test)
    extract(model(), ds.items[:a.eval_batch_size], a.device, a.eval_batch_size)  # warm-up

    # cached: one extraction over every item, then epochs on the matrix
    t0 = time.perf_counter()
    m_cached = model()
    cache = extract(m_cached, ds.items, a.device, a.eval_batch_size)
    values = cache.values.to(a.device)
    fit_c = fit_head(m_cached.head, lambda idx: values[torch.as_tensor(idx)], ds, split, settings)
    with torch.no_grad():
        pred_c = m_cached.head(values[torch.as_tensor(split.test)]).double().cpu().numpy()
    t_cached = time.perf_counter() - t0

    # recomputed: the backbone runs on every batch of every epoch
    t0 = time.perf_counter()
    m_re = model()
    fit_r = fit_head(m_re.head, recomputed(m_re, ds.items, settings), ds, split, settings)
    with torch.no_grad():
        pred_r = m_re.head(recomputed(m_re, ds.items, settings)(split.test)).double().cpu().numpy()
    t_re = time.perf_counter() - t0

    dev = torch.cuda.get_device_name() if a.device.startswith("cuda") else \
        f"CPU, {torch.get_num_threads()} threads"
    n = len(ds.items)
    print(f"{a.kind.upper()} linear probe on {a.backbone} ({a.init}), known-order set "
          f"{a.size}px: {n} images ({split.train.size} train, {split.val.size} validation, "
          f"{split.test.size} test), {a.epochs} epochs, device {dev}")
    print(f"feature extraction: {cache.images} images in {cache.seconds:.2f} s = "
          f"{cache.images_per_second:.1f} images/s")
    print(f"cached     : {t_cached:8.2f} s  (extraction {cache.seconds:.2f} s + "
          f"{fit_c['epochs_run']} epochs on the cache {t_cached - cache.seconds:.2f} s)")
    print(f"recomputed : {t_re:8.2f} s  ({fit_r['epochs_run']} epochs)")
    print(f"speed-up   : {t_re / t_cached:.1f}x at {a.epochs} epochs")
    s_c = evaluate(pred_c, test_ds)["srcc"]
    s_r = evaluate(pred_r, test_ds)["srcc"]
    print(f"same model : val SRCC {fit_c['val_srcc']:.4f} vs {fit_r['val_srcc']:.4f}, test SRCC "
          f"{s_c:.4f} vs {s_r:.4f}, max |prediction difference| "
          f"{float(np.abs(pred_c - pred_r).max()):.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
