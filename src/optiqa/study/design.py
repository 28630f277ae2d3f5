"""Can the study's design answer its questions? Checked from the config alone (``--dry-run``),
before any GPU hour is spent.

For every pooled group of every grid (:mod:`optiqa.stats.groups`) it counts, per evaluator, the
fidelity metrics that evaluator may judge (the circularity rule removes a metric's own family);
a group where no evaluator reaches :data:`~optiqa.stats.ranking.MIN_METRICS` is *undefined*. For
every contrast it checks that the two sides differ in the contrasted factor alone (else
*confounded*). The report computes the same groups from the same grids, so what the dry run
calls defined is what the report shows.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class DesignCheck:
    groups: list[dict] = field(default_factory=list)     # every group with its metric counts
    undefined: list[str] = field(default_factory=list)   # "grid / scope group: why"
    confounded: list[str] = field(default_factory=list)  # "grid / contrast: why"
    contrasts: list[str] = field(default_factory=list)   # the defined contrasts

    def to_json(self) -> dict:
        return {"groups": self.groups, "undefined": self.undefined,
                "confounded": self.confounded, "contrasts": self.contrasts}


def check_design(cfg) -> DesignCheck:
    from optiqa.study.judges import excluded_evaluators
    from optiqa.stats.asymmetry import Cell
    from optiqa.study.cells import expand_cells, setting_label, study_grids
    from optiqa.stats.groups import contrast_confound, contrast_pairs, setting_groups
    from optiqa.stats.ranking import MIN_METRICS

    study_cells = expand_cells(cfg)
    cells = [Cell(c.name, c.fidelity, c.discriminator, c.level, c.architecture,
                  c.adversarial_weight, c.task) for c in study_cells]
    # the evaluators each cell excludes (circularity rule, a kept pixel term), once per setting
    excluded = {}
    for c in study_cells:
        key = (c.task, c.fidelity, setting_label(c.discriminator, c.adversarial_weight))
        if key not in excluded:
            excluded[key] = set(excluded_evaluators(cfg, c))
    groups = setting_groups(cells, study_grids(cfg))
    out = DesignCheck()
    for g in groups:
        # as the analysis: a metric enters for an evaluator that may judge all its cells
        counts = {e: sum(all(e not in excluded.get((g.task, m, s), set())
                             for s in g.settings) for m in g.fidelity)
                  for e in cfg.evaluators.metrics}
        best = max(counts.values(), default=0)
        out.groups.append({"task": g.task, "grid": g.grid, "scope": g.scope,
                           "group": g.group, "settings": len(g.settings),
                           "metrics": len(g.fidelity), "max_judgeable": best})
        if best < MIN_METRICS:
            out.undefined.append(
                f"{g.task} / {g.grid} / {g.scope} {g.group}: at most {best} "
                f"fidelity metric(s) per evaluator (the rank agreement needs {MIN_METRICS})")
    for task, grid, scope, a, b in contrast_pairs(groups):
        name = f"{task} / {grid} / {scope}: {b.group} - {a.group}"
        why = contrast_confound(scope, a, b, [c for c in cells if c.task == task])
        (out.confounded.append(f"{name}: {why}") if why else out.contrasts.append(name))
    return out
