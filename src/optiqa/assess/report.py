"""Text, CSV and JSON forms of assessment and fitting results (what the CLI prints and writes)."""
from __future__ import annotations

import math

from optiqa.assess.benchmark import PLCC_NOTE, SIGN_NOTE
from optiqa.data.iqa import IQADataset
from optiqa.core.tables import format_table, format_value

STATS = ("srcc", "krcc", "plcc", "rmse")


def _ci(ci, flagged: bool = False) -> str:
    """``[lo, hi]``, with ``*`` when the interval rests on too few contents (see the note)."""
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]" + ("*" if flagged else "") if ci else "-"


def _num(v):
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v


def header_lines(dataset: IQADataset, results: list[dict], n_boot: int) -> list[str]:
    """What every table says above the numbers: data, orientation, fit, CIs, warnings."""
    lines = []
    if dataset.label:
        lines.append(f"*** {dataset.label.upper()} ***")
    lines.append(f"dataset: {dataset.spec.title} ({dataset.name}), {len(dataset)} items; "
                 f"target: {dataset.spec.score_meaning}")
    lines.append(f"sign: {SIGN_NOTE}")
    if dataset.evaluation == "within":
        r = results[0] if results else {}
        excl = r.get("strata_excluded") or {}
        excl_text = "; ".join(f"{c} {why}" for why, c in excl.items()) or "none"
        lines.append(f"SRCC/KRCC: means over {r.get('strata_used', '?')} (content, distortion) "
                     f"groups, computed within each group; excluded groups (no order in the "
                     f"target, the same for every metric): {excl_text}; a group where a metric's "
                     "scores are constant counts as SRCC 0 for that metric (column 'const'); "
                     "PLCC/RMSE not defined for an ordinal target")
    else:
        lines.append(PLCC_NOTE)
    if n_boot > 0:
        lines.append(f"95% CIs: percentile bootstrap, {n_boot} resamples of reference contents")
    for caveat in dataset.caveats:  # short; the full warning went to stderr before the run
        lines.append(f"NOTE: {caveat}")
    for warning in dict.fromkeys(r["ci_warning"] for r in results if r.get("ci_warning")):
        lines.append(f"* {warning}")
    for r in results:
        if r.get("fit_error"):
            lines.append(f"WARNING: {r['metric']}: no PLCC/RMSE: {r['fit_error']}")
    return lines


def assessment_table(results: list[dict], published: bool = False) -> str:
    within = any(r.get("evaluation") == "within" for r in results)
    stats = STATS[:2] if within else STATS
    headers = ["dataset", "metric", "n"] + (["const"] if within else [])
    for s in stats:
        headers += [s.upper(), "95% CI"]
    if published:
        headers += ["published SRCC", "published PLCC**"]
    rows = []
    for r in results:
        row = [r["dataset"], r["metric"], r["n"]]
        if within:
            row.append(r.get("strata_constant_scores", 0))
        for s in stats:
            row += [_num(r.get(s)), _ci(r.get(f"{s}_ci"), bool(r.get("ci_warning")))]
        if published:
            row += [r.get("published_srcc"), r.get("published_plcc")]
        rows.append(row)
    return format_table(headers, rows)


def store_lines(results: list[dict]) -> list[str]:
    out = []
    for r in results:
        if r.get("from_store"):
            out.append(f"{r['metric']}: {r['from_store']} of {r['n']} scores answered from the "
                       "store")
    return out


def csv_rows(results: list[dict]) -> tuple[list[str], list[list]]:
    """Flat CSV columns: the statistics, CI bounds and provenance."""
    headers = ["dataset", "metric", "n"]
    for s in STATS:
        headers += [s, f"{s}_ci_low", f"{s}_ci_high"]
    headers += ["evaluation", "sign", "target", "label", "missing", "fit_error", "from_store"]
    extra = [k for k in ("published_srcc", "published_plcc", "published_krcc")
             if any(k in r for r in results)]
    headers += extra
    rows = []
    for r in results:
        row = [r["dataset"], r["metric"], r["n"]]
        for s in STATS:
            ci = r.get(f"{s}_ci") or [None, None]
            row += [_num(r.get(s)), ci[0], ci[1]]
        row += [r.get("evaluation"), r.get("sign"), r.get("target"), r.get("label"),
                r.get("missing"), r.get("fit_error"), r.get("from_store")]
        row += [r.get(k) for k in extra]
        rows.append(["" if v is None else v for v in row])
    return headers, rows


def fit_lines(result: dict) -> list[str]:
    """The summary of ``optiqa fit``: split, held-out SRCC before and after, file written."""
    b, a = result["heldout_before"], result["heldout_after"]
    lines = []
    if result.get("label"):
        lines.append(f"*** {result['label'].upper()} ***")
    lines.append(f"fit {result['metric']} (backbone {result['backbone']}) on {result['dataset']}: "
                 f"{result['n_train']} training items from {result['train_contents']} contents; "
                 f"{result['n_test']} held-out items from {len(result['test_contents'])} contents "
                 f"({', '.join(map(str, result['test_contents'][:8]))}"
                 f"{' ...' if len(result['test_contents']) > 8 else ''})")
    lines.append(f"ranking: {result['ranking']}")

    fmt = format_value
    lines.append(f"held-out SRCC: before {fmt(b['srcc'])} -> after {fmt(a['srcc'])}   "
                 f"(KRCC {fmt(b['krcc'])} -> {fmt(a['krcc'])}; training SRCC after "
                 f"{fmt(result['train_after']['srcc'])})")
    if b.get("srcc_ci") and a.get("srcc_ci"):
        lines.append(f"held-out SRCC 95% CI: before {_ci(b['srcc_ci'])}, after {_ci(a['srcc_ci'])}")
    if "heldout_after_within_type" in result:
        lines.append("held-out SRCC within (content, distortion) groups: before "
                     f"{fmt(result['heldout_before_within_type']['srcc'])} -> after "
                     f"{fmt(result['heldout_after_within_type']['srcc'])}")
    lines.append(f"features {result['seconds_features']:.1f} s, fit {result['seconds_fit']:.1f} s; "
                 f"wrote {result['out']} (load with create_metric('{result['metric']}', "
                 "weights=PATH) or `optiqa assess --weights PATH`)")
    return lines
