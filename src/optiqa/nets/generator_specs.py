"""The generator registry as data, without torch: ``optiqa train --help`` lists it without
importing any network (:mod:`optiqa.nets.generators` builds them). Users add their own entries
with ``REGISTRY.register(name, GeneratorSpec(...))``."""
from __future__ import annotations

from dataclasses import dataclass

from optiqa.core.registry import Registry


@dataclass(frozen=True)
class GeneratorSpec:
    name: str
    factory: str  # "module:callable"
    summary: str
    options: str | None = None  # "module:Class" whose signature lists the valid options
    trainable: bool = True      # False: a parameter-free baseline (bicubic)


_N = "optiqa.nets."
REGISTRY: Registry[GeneratorSpec] = Registry("generator", {s.name: s for s in [
    GeneratorSpec("swinir", _N + "swinir:swinir", "SwinIR classical SR (embed 180, 6x6, window 8)",
                  _N + "swinir:SwinIR"),
    GeneratorSpec("swinir_light", _N + "swinir:swinir_light",
                  "SwinIR lightweight SR (embed 60, 4x6, pixelshuffledirect)",
                  _N + "swinir:SwinIR"),
    GeneratorSpec("rrdbnet", _N + "rrdbnet:RRDBNet", "ESRGAN RRDBNet (64 feat, 23 RRDB, gc 32)"),
    GeneratorSpec("srresnet", _N + "srresnet:srresnet", "MSRResNet (BasicSR), small for CPU",
                  _N + "srresnet:MSRResNet"),
    GeneratorSpec("hat", _N + "community:hat", "HAT SRx4 (embed 180, 6x6 HABs, window 16)"),
    GeneratorSpec("hat_s", _N + "community:hat_s", "HAT-S (embed 144, compress/squeeze 24)",
                  _N + "community:hat"),
    GeneratorSpec("hat_l", _N + "community:hat_l", "HAT-L (12 RHAGs)", _N + "community:hat"),
    GeneratorSpec("span", _N + "community:span", "SPAN efficient SR (48 channels, 6 SPABs)"),
    GeneratorSpec("omnisr", _N + "community:omnisr", "Omni-SR lightweight SR (64 ch, 5 OSAGs)"),
    GeneratorSpec("bicubic", _N + "generators:BicubicUpsampler",
                  "MATLAB-style bicubic upsampling, no parameters (baseline)", trainable=False),
]})
