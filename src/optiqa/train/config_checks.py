"""Checks of a training config across its blocks and against the registries, before anything
is built or read: :func:`check_train_config`.

Separate from the schema (:mod:`optiqa.train.config`), whose blocks check only their own numbers:
these checks look the generator, discriminator, backbone, metric and GAN type names up in their
registries (imported when the check runs) and compare options across blocks. Like
:mod:`optiqa.train.datasets` it imports nothing from the schema (the schema's import path of
:func:`check_train_config` points here).
"""
from __future__ import annotations

import difflib

from optiqa.core.errors import ConfigError, OptiqaError, Problems, UnknownNameError


def _check_options(kind: str, path: str, opts: dict, valid: set[str]) -> None:
    for key in opts:
        if key not in valid:
            close = difflib.get_close_matches(key, sorted(valid), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"unknown key {path}.{key}{hint}: not an option of {kind}; "
                              f"valid: {', '.join(sorted(valid))}")


def _check_metric(name: str, path: str, need_grad: bool) -> None:
    from optiqa.metrics.registry import get_spec

    try:
        spec = get_spec(name)
    except OptiqaError as e:
        raise ConfigError(f"{path}: {e}") from None
    if need_grad and not spec.info.differentiable:
        raise ConfigError(f"{path}: metric {name!r} is not differentiable and cannot be a "
                          "training loss")


def _network_options(kind: str, key: str, block: dict, options_of) -> dict:
    """Check a ``network_g``/``network_d`` block's type and option names; returns its options."""
    try:
        valid = options_of(block["type"])
    except UnknownNameError as e:
        raise ConfigError(f"{key}.type: {e}") from None
    opts = {k: v for k, v in block.items() if k != "type"}
    _check_options(f"{kind} {block['type']!r}", key, opts, valid)
    return opts


def check_train_config(cfg) -> None:
    """Checks of ``cfg`` (a :class:`~optiqa.train.config.TrainConfig`) across blocks and against
    the registries (generator, discriminator, backbone, metric and GAN type names, network
    options), before anything is built or read.

    Raises :class:`ConfigError` naming the key. The data are checked by
    :func:`~optiqa.train.datasets.build_train_datasets`.
    """
    from optiqa.models import backbones
    from optiqa.metrics.registry import get_spec
    from optiqa.nets.discriminators import discriminator_options
    from optiqa.nets.generators import REGISTRY as GENERATORS
    from optiqa.nets.generators import generator_options
    from optiqa.train.gan import GAN_TYPES

    problems = Problems()
    trainable = [n for n, s in GENERATORS.items() if s.trainable]
    g_type = cfg.network_g["type"]
    with problems.collect():
        if g_type not in GENERATORS:  # only trainable types are offered (bicubic: a baseline)
            raise ConfigError("network_g.type: " + str(UnknownNameError("generator", g_type,
                                                                       trainable)))
        if not GENERATORS.get(g_type).trainable:
            raise ConfigError(f"network_g.type: {g_type!r} has no parameters to train (a "
                              f"baseline); trainable generators: {', '.join(trainable)}")
        net_opts = _network_options("generator", "network_g", cfg.network_g, generator_options)
        for key in ("scale", "upscale"):
            if key in net_opts and net_opts[key] != cfg.scale:
                problems.add(f"network_g.{key} is {net_opts[key]!r} but scale is {cfg.scale}")
    t = cfg.train
    if cfg.uses_gan:
        if cfg.network_d is None:
            problems.add("train.gan_opt.weight > 0 needs a discriminator (network_d)")
        if t.gan_opt.type not in GAN_TYPES:
            problems.add(f"train.gan_opt.type: unknown gan type {t.gan_opt.type!r}; valid: "
                         f"{', '.join(GAN_TYPES)}")
    if cfg.network_d is not None:
        with problems.collect():
            d_opts = _network_options("discriminator", "network_d", cfg.network_d,
                                      discriminator_options)
            if "backbone" in d_opts and d_opts["backbone"] not in backbones.REGISTRY:
                problems.add("network_d.backbone: " + str(UnknownNameError(
                    "backbone", d_opts["backbone"], backbones.names())))
    metric_ok = False
    if t.fidelity_weight > 0:
        with problems.collect():
            _check_metric(t.fidelity_opt.metric, "train.fidelity_opt.metric", need_grad=True)
            metric_ok = True
    if cfg.val is not None:
        for i, m in enumerate(cfg.val.metrics):
            with problems.collect():
                _check_metric(m, f"val.metrics[{i}]", need_grad=False)
        if cfg.datasets.val is None:
            problems.add("val is set but datasets.val is missing (or remove the val block)")
    gt = cfg.datasets.train.gt_size
    if gt % cfg.scale:
        problems.add(f"datasets.train.gt_size {gt} is not a multiple of scale {cfg.scale}")
    if metric_ok:
        need = get_spec(t.fidelity_opt.metric).info.min_size
        if gt < need:
            problems.add(f"datasets.train.gt_size {gt} is smaller than the "
                         f"{need}x{need} that metric {t.fidelity_opt.metric!r} needs")
    problems.raise_any()
