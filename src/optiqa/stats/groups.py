"""Pooled groups of adversarial settings, defined per grid, and the contrasts between them.

A study's grid is one or more **grids** (``grids`` in the study config; without it, one grid of
every fidelity metric x every setting). Each grid is a full cross product of its fidelity
metrics and its settings, so a pooled group (e.g. "patch-level discriminators") is defined over
*the grid's* metrics and settings: a metric is never dropped because another grid trained it in
fewer settings (the old silent intersection). Groups per grid and task:

- scope ``setting``: each setting alone;
- ``adversarial``: ``without`` (no discriminator) and ``with`` (every discriminator and weight);
- ``level``: ``patch`` / ``image``; ``backbone``: ``conv`` / ``transformer``;
- ``weight``: one adversarial weight over all discriminators (``0`` = none).

A **contrast** (second - first) compares two groups of one grid. It answers a question about
one factor only when the two sides differ in that factor alone: the level contrast needs the
same (backbone kind, weight) settings on both sides, the backbone contrast the same (level,
weight) ones. Otherwise it is *confounded* (e.g. patch level only on a convolutional backbone,
image level only on a Transformer) and :func:`contrast_confound` says how.
"""
from __future__ import annotations

from collections import Counter

from optiqa.stats.rows.agreement import SettingGroup

LEVELS = ("patch", "image")
BACKBONE_KINDS = ("conv", "transformer")
# contrasts between pooled groups, reported as (second - first) with a paired bootstrap interval
CONTRASTS = (("adversarial", "without", "with"), ("level", "patch", "image"),
             ("backbone", "conv", "transformer"))
# the factors that must match on both sides of a contrast (the others than the one contrasted)
_HELD = {"level": ("backbone_kind", "adversarial_weight"),
         "backbone": ("level", "adversarial_weight")}
ALL = "all"


def grid_of_cells(cells, name: str = ALL) -> dict:
    """One grid over every given cell: all their fidelity metrics and settings."""
    return {"name": name, "fidelity": sorted({c.fidelity for c in cells}),
            "settings": list(dict.fromkeys(c.setting for c in cells))}


def setting_groups(cells, grids: list[dict] | None = None) -> list[SettingGroup]:
    """The groups of settings rank agreement is computed over, per task and grid.

    ``cells`` have ``task, fidelity, setting, adversarial, discriminator, adversarial_weight,
    level, backbone_kind``; ``grids``: ``[{'name', 'fidelity': [...], 'settings': [...]}]``
    (default: one grid of all cells). Every group carries its grid's name and fidelity metrics.
    """
    out = []
    for task in dict.fromkeys(c.task for c in cells):
        mine = [c for c in cells if c.task == task]
        first = {}
        for c in mine:
            first.setdefault(c.setting, c)
        for grid in grids if grids is not None else [grid_of_cells(mine)]:
            order = sorted((s for s in grid["settings"] if s in first),
                           key=lambda s: (first[s].adversarial, first[s].discriminator,
                                          first[s].adversarial_weight))
            adv = [s for s in order if first[s].adversarial]

            def add(scope, group, members, weight=None, task=task, grid=grid):
                if members:
                    out.append(SettingGroup(task, grid["name"], scope, group, members,
                                            list(grid["fidelity"]), weight))
            for s in order:
                add("setting", s, [s], first[s].adversarial_weight)
            add("adversarial", "without", [s for s in order if s == "none"])
            add("adversarial", "with", adv)
            for lvl in LEVELS:
                add("level", lvl, [s for s in adv if first[s].level == lvl])
            for kind in BACKBONE_KINDS:
                add("backbone", kind, [s for s in adv if first[s].backbone_kind == kind])
            add("weight", "0", [s for s in order if s == "none"], 0.0)
            for w in sorted({first[s].adversarial_weight for s in adv}):
                add("weight", f"{w:g}", [s for s in adv if first[s].adversarial_weight == w], w)
    return out


def contrast_confound(scope: str, first: SettingGroup, second: SettingGroup,
                      cells) -> str | None:
    """Why the contrast ``second - first`` of ``scope`` is not a one-factor comparison (None
    when it is): the settings on both sides must match in every other factor."""
    held = _HELD.get(scope)
    if held is None:
        return None
    by_setting = {c.setting: c for c in cells}

    def profile(group):
        return Counter(tuple(getattr(by_setting[s], f) for f in held) for s in group.settings)

    a, b = profile(first), profile(second)
    if a == b:
        return None

    def text(p):
        return ", ".join(f"{'/'.join(f'{v:g}' if isinstance(v, float) else str(v) for v in k)}"
                         + (f" x{n}" if n > 1 else "") for k, n in sorted(p.items(), key=str))
    return (f"confounded: {first.group} has ({' / '.join(held)}) {text(a)}, "
            f"{second.group} has {text(b)}")


def contrast_pairs(groups: list[SettingGroup]):
    """``(task, grid, scope, first group, second group)`` of every contrast both of whose sides
    exist in the same grid."""
    index = {(g.task, g.grid, g.scope, g.group): g for g in groups}
    for task, grid in dict.fromkeys((g.task, g.grid) for g in groups):
        for scope, first, second in CONTRASTS:
            a, b = index.get((task, grid, scope, first)), index.get((task, grid, scope, second))
            if a is not None and b is not None:
                yield task, grid, scope, a, b
