"""Restoring images with a trained generator and scoring what it restores (DESIGN.md's
``restore/``): not training, so not in :mod:`optiqa.train`.

- :mod:`optiqa.restore.generator`: load a generator from a run folder or a community
  checkpoint; restore a tensor (tiled) or image files;
- :mod:`optiqa.restore.scoring`: score restored images against their ground truth with the
  metrics and the SR table protocol (``optiqa evaluate``);
- :mod:`optiqa.restore.protocol`: the SR table conventions (PSNR/SSIM on Y with a border crop,
  MATLAB's or BasicSR's arithmetic).
"""
