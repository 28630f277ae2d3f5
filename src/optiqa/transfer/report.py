"""Text forms of transfer and zero-shot results (what ``optiqa transfer`` prints)."""
from __future__ import annotations

from optiqa.core.tables import format_table
from optiqa.transfer.experiment import has_plcc, summary_table


def result_lines(result: dict) -> list[str]:
    """Header, sign and statistics notes, and the summary table of a transfer result."""
    init = result["init"]
    lines = [f"transfer: {result['kind'].upper()} model on {result['backbone_title']} "
             f"(init {init}, {result['mode']}, {result['head']} head) - dataset "
             f"{result['dataset']}: {result['target']}"]
    if result.get("label"):
        lines.append(f"NOTE: {result['label']}")
    opts = result["options"]
    lines.append(f"{opts['repeats']} repeats; split by reference content: test "
                 f"{opts['test_fraction']:g}, validation {opts['val_fraction']:g} of the rest "
                 "(early stopping on validation only)")
    lines.append(f"sign: {result['sign']}")
    stats = [result["std_note"]]
    if has_plcc(result):
        stats.insert(0, result["plcc_note"])
    if result.get("evaluation") == "within" or any(
            c.get("evaluation") == "within" for c in (result.get("cross") or {}).values()):
        stats.append("evaluation 'within': SRCC/KRCC are means within (content, distortion) "
                     "groups, and PLCC is not defined (an ordinal target)")
    lines.append("; ".join(stats))
    feats = result.get("features")
    if feats:
        lines.append(f"features extracted once: {feats['images']} images in {feats['seconds']:.1f}"
                     f" s ({feats['images_per_second']:.1f} images/s), {feats['dim']} values each")
    lines.append(format_table(*summary_table(result)))
    if result.get("from_store"):
        lines.append(f"(from the store: {result['key']})")
    return lines


def zero_shot_lines(result: dict) -> list[str]:
    lines = [f"zero-shot: discriminator of {result['run']} (iteration {result['iteration']}, "
             f"{result['level']}-level) on {result['dataset']}: {result['target']}"]
    if result.get("label"):
        lines.append(f"NOTE: {result['label']}")
    lines.append(f"crops: up to {result['grid']}x{result['grid']} of {result['crop']}px per image")
    lines.append(f"sign: {result['sign_note']}")
    rows = [["SRCC", result.get("srcc"), result.get("srcc_ci")],
            ["KRCC", result.get("krcc"), result.get("krcc_ci")]]
    if result.get("evaluation") == "within":
        lines.append("within-(content, distortion) means; PLCC not defined for an ordinal target")
    else:
        lines.append(result["plcc_note"])
        rows.append(["PLCC", result.get("plcc"), result.get("plcc_ci")])
    flag = "*" if result.get("ci_warning") else ""
    lines.append(format_table(["statistic", "value", "95% CI (bootstrap over contents)"],
                              [[n, v, f"[{ci[0]:.4f}, {ci[1]:.4f}]{flag}" if ci else "-"]
                               for n, v, ci in rows]))
    if result.get("ci_warning"):
        lines.append(f"* {result['ci_warning']}")
    if result.get("from_store"):
        lines.append(f"(from the store: {result['key']})")
    return lines


__all__ = ["result_lines", "zero_shot_lines"]
