"""``optiqa metrics``, ``optiqa score``, ``optiqa weights``, ``optiqa samples``."""
from __future__ import annotations

import json

from optiqa.cli.common import add_quiet


def cmd_metrics(args) -> int:
    from optiqa.core.tables import format_table
    from optiqa.metrics import list_metrics, metric_available_offline
    from optiqa.metrics.registry import metric_needs

    rows = []
    for name, info in list_metrics(args.pattern).items():
        rows.append({
            "name": name, "kind": info.kind, "orientation": info.orientation,
            "lower_better": info.lower_better,
            "differentiable": info.differentiable, "range": list(info.score_range),
            "colour": info.colour, "min_size": info.min_size, "family": info.family,
            "needs_weights": info.backbone, "needs": metric_needs(name),
            "available_offline": metric_available_offline(name),
            "reference": info.reference,
        })
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(format_table(
        ["metric", "kind", "orientation", "differentiable", "range", "input", "min size",
         "offline"],
        [[r["name"], r["kind"], r["orientation"], r["differentiable"],
          f"[{r['range'][0]:g}, {r['range'][1]:g}]", r["colour"], r["min_size"],
          "yes" if r["available_offline"] else f"no (needs {r['needs']})"]
         for r in rows]))
    return 0


def cmd_score(args) -> int:
    from optiqa.assess.files import score_files
    from optiqa.core.tables import format_table, write_csv, write_json
    from optiqa.metrics import list_metrics

    results = score_files(args.metric, args.distorted, args.reference, device=args.device,
                          progress=not args.quiet)
    names = list(dict.fromkeys(args.metric))
    headers = ["distorted", "reference"] + names
    rows = [[r.distorted.name, r.reference.name] + [r.scores[n] for n in names] for r in results]
    if len(rows) > 1:
        means = [sum(r.scores[n] for r in results) / len(results) for n in names]
        rows_shown = rows + [["mean", f"({len(rows)} pairs)"] + means]
    else:
        rows_shown = rows
    print(format_table(headers, rows_shown))
    infos = list_metrics()
    print("orientation: " + "; ".join(f"{n} {infos[n].orientation}" for n in names))
    if args.csv:
        write_csv(args.csv, headers, rows)
    if args.json:
        write_json(args.json, [{"distorted": str(r.distorted), "reference": str(r.reference),
                                **r.scores} for r in results])
    return 0


def cmd_weights(args) -> int:
    from optiqa import backbones
    from optiqa.core.tables import format_table

    if args.action == "list":
        print(format_table(["backbone", "title", "pretrained weights", "on this machine"],
                           [[n, backbones.spec(n).title, backbones.weights_description(n),
                             backbones.weights_available(n)] for n in backbones.names()]))
        return 0
    for name in args.names:
        path = backbones.fetch(name)
        print(f"{name}: {path}")
    return 0


def cmd_samples(args) -> int:
    from optiqa.data.samples import write_sample_pairs

    ref_dir, dist_dir, n = write_sample_pairs(args.folder, size=args.size)
    print(f"wrote {n} distorted images to {dist_dir} and their references to {ref_dir}")
    return 0


def add_parsers(sub) -> None:
    s = sub.add_parser("metrics", help="list the metrics with kind (fr: needs a reference, nr: "
                       "none), orientation and availability")
    s.add_argument("pattern", nargs="?", help="only names matching this glob, e.g. 'dists_*'")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    s.set_defaults(func=cmd_metrics)

    s = sub.add_parser("score", help="score a distorted image (or folder) against its reference")
    s.add_argument("distorted", help="distorted image file or folder")
    s.add_argument("reference", help="reference image file or folder")
    s.add_argument("-m", "--metric", action="append", required=True,
                   help="metric name (repeatable); see `optiqa metrics`")
    s.add_argument("--device", default="cpu")
    s.add_argument("--csv", help="also write the scores as CSV")
    s.add_argument("--json", help="also write the scores as JSON")
    add_quiet(s)
    s.set_defaults(func=cmd_score)

    s = sub.add_parser("weights", help="list or download pretrained backbone weights")
    wsub = s.add_subparsers(dest="action", required=True)
    wsub.add_parser("list", help="where each backbone's weights come from, and whether present")
    f = wsub.add_parser("fetch", help="download weights into the cache (needs internet)")
    f.add_argument("names", nargs="+", help="backbone names")
    s.set_defaults(func=cmd_weights)

    s = sub.add_parser("samples", help="write the built-in sample photos and distorted versions")
    s.add_argument("folder", help="output folder (gets reference/ and distorted/)")
    s.add_argument("--size", type=int, default=256, help="square crop size (default 256)")
    s.set_defaults(func=cmd_samples)
