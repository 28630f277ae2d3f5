"""Networks: generators (SwinIR, RRDBNet, SRResNet, HAT, SPAN, Omni-SR) and discriminators.

Entry points: ``create_generator(type, **opts)`` and ``create_discriminator(type, **opts)``.
They are imported on first use (PEP 562), so that torch-free parts such as the generator
registry (:mod:`optiqa.nets.generator_specs`, read by ``optiqa train --help``) import no torch.
"""
import importlib

_EXPORTS = {
    "create_discriminator": "optiqa.nets.discriminators",
    "list_discriminators": "optiqa.nets.discriminators",
    "load_discriminator_checkpoint": "optiqa.nets.discriminators",
    "create_generator": "optiqa.nets.generators",
    "list_generators": "optiqa.nets.generators",
    "load_generator_checkpoint": "optiqa.nets.generators",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    try:  # a submodule (optiqa.nets.swinir) reached as an attribute
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
