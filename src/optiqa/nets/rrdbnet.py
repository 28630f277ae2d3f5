"""RRDBNet, the ESRGAN generator (our implementation).

Wang et al., "ESRGAN: Enhanced Super-Resolution Generative Adversarial Networks", ECCV
Workshops 2018; official code ``xinntao/ESRGAN``, later ``XPixelGroup/BasicSR``
(``basicsr/archs/rrdbnet_arch.py``) whose parameter names we use. Structure:
``conv_first`` -> ``num_block`` Residual-in-Residual Dense Blocks -> ``conv_body`` + long skip ->
two (nearest x2 upsampling, 3x3 conv, LeakyReLU 0.2) stages -> ``conv_hr`` -> ``conv_last``.
A residual dense block has five 3x3 convs with dense connections (growth ``num_grow_ch``) and
returns ``x + 0.2 * conv5(...)``; an RRDB chains three of them and returns ``x + 0.2 * out``
(residual scaling, which stabilises training of deep nets without BatchNorm).
ESRGAN configuration: ``num_feat=64, num_block=23, num_grow_ch=32``, x4. Scales 2 and 1 fold
the input with ``pixel_unshuffle`` first (as BasicSR / Real-ESRGAN).

Checkpoints: BasicSR names load as they are; the original ESRGAN release
(``RRDB_ESRGAN_x4.pth``: ``model.0``, ``model.1.sub.N.RDB1.conv1.0``, ...) and the 2019 ESRGAN
code (``RRDB_trunk.N.RDB1.conv1``, ``trunk_conv``, ``upconv1``, ``HRconv``) are renamed by
:meth:`RRDBNet.convert_state_dict`.
"""
from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn


def scaled_kaiming_(module: nn.Module, scale: float = 0.1) -> None:
    """Kaiming-normal conv weights times ``scale``, zero bias (BasicSR ``default_init_weights``):
    small initial residual branches let the deep residual stack start close to identity."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight)
            m.weight.data.mul_(scale)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class ResidualDenseBlock(nn.Module):
    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32):
        super().__init__()
        f, g = num_feat, num_grow_ch
        self.conv1 = nn.Conv2d(f, g, 3, 1, 1)
        self.conv2 = nn.Conv2d(f + g, g, 3, 1, 1)
        self.conv3 = nn.Conv2d(f + 2 * g, g, 3, 1, 1)
        self.conv4 = nn.Conv2d(f + 3 * g, g, 3, 1, 1)
        self.conv5 = nn.Conv2d(f + 4 * g, f, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)
        scaled_kaiming_(self, 0.1)

    def forward(self, x):
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RRDB(nn.Module):
    def __init__(self, num_feat: int, num_grow_ch: int = 32):
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x):
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """``forward(lr NCHW [0, 1]) -> (N, C, H*scale, W*scale)``; ``scale`` in {1, 2, 4}."""

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, scale: int = 4,
                 num_feat: int = 64, num_block: int = 23, num_grow_ch: int = 32):
        super().__init__()
        if scale not in (1, 2, 4):
            raise ValueError(f"RRDBNet supports scales 1, 2 and 4, got {scale}")
        self.scale = scale
        fold = {4: 1, 2: 4, 1: 16}[scale]
        self.conv_first = nn.Conv2d(num_in_ch * fold, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(num_feat, num_grow_ch) for _ in range(num_block)))
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x):
        if self.scale != 4:
            h, w = x.shape[-2:]
            f = 4 // self.scale  # pixel_unshuffle needs sides divisible by f: pad, crop later
            x = F.pad(x, (0, -w % f, 0, -h % f), mode="replicate")
            x = F.pixel_unshuffle(x, f)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        out = self.conv_last(self.lrelu(self.conv_hr(feat)))
        if self.scale != 4:
            out = out[..., : h * self.scale, : w * self.scale]
        return out

    @staticmethod
    def convert_state_dict(state: dict) -> tuple[dict, str]:
        """Rename the original ESRGAN key layouts to BasicSR's; BasicSR keys pass unchanged."""
        keys = list(state)
        if any(k.startswith("model.") for k in keys):
            return _from_esrgan_2018(state), "esrgan-2018 (model.N)"
        if any(k.startswith("RRDB_trunk.") for k in keys):
            return _from_esrgan_2019(state), "esrgan-2019 (RRDB_trunk)"
        return dict(state), "basicsr"


def _from_esrgan_2018(state: dict) -> dict:
    # RRDB_ESRGAN_x4.pth / RRDB_PSNR_x4.pth: a Sequential "model" whose body is a ShortcutBlock
    # (".sub") over the RRDBs followed by the trunk conv; convs inside RDBs are Sequential(conv,
    # act), hence the trailing ".0". Mapping as in ESRGAN's transer_RRDB_models.py.
    fixed = {"model.0.": "conv_first.", "model.3.": "conv_up1.", "model.6.": "conv_up2.",
             "model.8.": "conv_hr.", "model.10.": "conv_last."}
    n_blocks = 1 + max((int(m.group(1)) for k in state
                        if (m := re.match(r"model\.1\.sub\.(\d+)\.RDB", k))), default=-1)
    out = {}
    for key, value in state.items():
        m = re.match(r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)$", key)
        if m:
            out[f"body.{m[1]}.rdb{m[2]}.conv{m[3]}.{m[4]}"] = value
            continue
        if key.startswith(f"model.1.sub.{n_blocks}."):
            out["conv_body." + key.rsplit(".", 1)[1]] = value
            continue
        prefix = next((p for p in fixed if key.startswith(p)), None)
        out[fixed[prefix] + key[len(prefix):] if prefix else key] = value
    return out


def _from_esrgan_2019(state: dict) -> dict:
    renames = {"trunk_conv.": "conv_body.", "upconv1.": "conv_up1.", "upconv2.": "conv_up2.",
               "HRconv.": "conv_hr."}
    out = {}
    for key, value in state.items():
        m = re.match(r"RRDB_trunk\.(\d+)\.RDB(\d)\.(.*)$", key)
        if m:
            out[f"body.{m[1]}.rdb{m[2]}.{m[3]}"] = value
            continue
        prefix = next((p for p in renames if key.startswith(p)), None)
        out[renames[prefix] + key[len(prefix):] if prefix else key] = value
    return out
