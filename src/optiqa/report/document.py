"""A small document model rendered twice: one self-contained HTML file and a Markdown file.

The report is a list of blocks (headings, paragraphs, tables, figures). Figures are PNG bytes:
embedded in the HTML as ``data:`` URIs (the file opens offline, alone) and written next to the
Markdown. Tables are also written as CSV. Nothing here knows about studies.
"""
from __future__ import annotations

import base64
import csv
import html
import io
from dataclasses import dataclass, field
from pathlib import Path

from optiqa.core.atomic import atomic_write, atomic_write_bytes, atomic_write_text
from optiqa.core.tables import format_value

CSS = """
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;color:#1b1b1b;
max-width:1180px;margin:2em auto;padding:0 1.2em}
h1{font-size:1.7em;margin-bottom:.2em}h2{margin-top:2em;border-bottom:1px solid #ccc;
padding-bottom:.2em}h3{margin-top:1.4em}
p.note{background:#fff8e1;border-left:4px solid #f0b400;padding:.6em .9em}
p.answer{font-size:1.02em;border-left:4px solid #2a7;background:#f2faf4;padding:.4em .8em;
margin:.35em 0}
p.protocol{color:#444;font-size:.92em;background:#f5f7fa;border-left:4px solid #8aa;
padding:.45em .8em}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.88em}
th,td{border:1px solid #d5d5d5;padding:3px 7px;text-align:right;white-space:nowrap}
th{background:#eef1f5;text-align:center}td.text{text-align:left}td.muted{color:#999}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #ddd}
figcaption{font-size:.9em;color:#333}nav a{margin-right:.8em}
div.scroll{overflow-x:auto;max-width:100%}
"""


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list]
    csv_name: str | None = None
    protocol: str = ""          # how the numbers were obtained, stated above the table
    muted: set = field(default_factory=set)   # (row, col) cells shown greyed (e.g. excluded)
    digits: int = 4
    stamp: str = ""             # written as a first "# ..." line of the CSV (e.g. a rehearsal)


@dataclass
class Figure:
    title: str
    png: bytes
    name: str
    caption: str = ""


@dataclass
class Document:
    title: str
    blocks: list = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(("h", level, text))

    def para(self, text: str, kind: str = "") -> None:
        self.blocks.append(("p", kind, text))

    def table(self, table: Table) -> None:
        self.blocks.append(("t", table))

    def figure(self, fig: Figure) -> None:
        self.blocks.append(("f", fig))

    def bullets(self, items: list[str]) -> None:
        self.blocks.append(("l", list(items)))

    def stamp(self, text: str) -> None:
        """Mark the page, every table (title and CSV) and every figure with ``text`` (e.g. a
        rehearsal's)."""
        self.title = f"{text}: {self.title}"
        for kind, *rest in self.blocks:
            if kind in ("t", "f"):
                rest[0].title = f"[{text}] {rest[0].title}"
            if kind == "t":
                rest[0].stamp = text

    # -- rendering ----------------------------------------------------------------------------
    def write(self, folder: Path) -> dict[str, Path]:
        """``report.html``, ``report.md``, ``tables/<name>.csv`` and ``figures/<name>.png``; a
        table or figure an earlier report left there and this one does not have is removed
        (e.g. the analysis' tables after the analysis became stale): it would read as current."""
        folder = Path(folder)
        (folder / "figures").mkdir(parents=True, exist_ok=True)
        (folder / "tables").mkdir(parents=True, exist_ok=True)
        written = set()
        for kind, *rest in self.blocks:
            if kind == "f":
                written.add(atomic_write_bytes(folder / "figures" / f"{rest[0].name}.png",
                                               rest[0].png))
            elif kind == "t" and rest[0].csv_name:
                written.add(write_csv(folder / "tables" / f"{rest[0].csv_name}.csv", rest[0]))
        md = atomic_write_text(folder / "report.md", self.markdown())
        page = atomic_write_text(folder / "report.html", self.html())
        for stale in [*(folder / "tables").glob("*.csv"), *(folder / "figures").glob("*.png")]:
            if stale not in written:
                stale.unlink()
        return {"html": page, "md": md, "tables": folder / "tables",
                "figures": folder / "figures"}

    def html(self) -> str:
        out = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
               f"<title>{html.escape(self.title)}</title><style>{CSS}</style></head><body>",
               f"<h1>{html.escape(self.title)}</h1>"]
        toc = [b[2] for b in self.blocks if b[0] == "h" and b[1] == 2]
        if toc:
            out.append("<nav>" + "".join(f"<a href='#{_anchor(t)}'>{html.escape(t)}</a>"
                                         for t in toc) + "</nav>")
        for kind, *rest in self.blocks:
            if kind == "h":
                level, text = rest
                out.append(f"<h{level} id='{_anchor(text)}'>{html.escape(text)}</h{level}>")
            elif kind == "p":
                cls, text = rest
                out.append(f"<p class='{cls}'>{html.escape(text)}</p>" if cls else
                           f"<p>{html.escape(text)}</p>")
            elif kind == "l":
                out.append("<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in rest[0])
                           + "</ul>")
            elif kind == "t":
                out.append(_html_table(rest[0]))
            elif kind == "f":
                fig = rest[0]
                data = base64.b64encode(fig.png).decode()
                out.append(f"<figure><img alt='{html.escape(fig.title)}' "
                           f"src='data:image/png;base64,{data}'><figcaption><b>"
                           f"{html.escape(fig.title)}</b> {html.escape(fig.caption)}"
                           "</figcaption></figure>")
        out.append("</body></html>")
        return "\n".join(out)

    def markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for kind, *rest in self.blocks:
            if kind == "h":
                out += ["#" * rest[0] + " " + rest[1], ""]
            elif kind == "p":
                prefix = "- " if rest[0] == "answer" else "> " if rest[0] else ""
                out += [prefix + rest[1], ""]
            elif kind == "l":
                out += [f"- {x}" for x in rest[0]] + [""]
            elif kind == "t":
                t = rest[0]
                if t.title:
                    out += [f"**{t.title}**", ""]
                if t.protocol:
                    out += [f"*{t.protocol}*", ""]
                out.append("| " + " | ".join(t.headers) + " |")
                out.append("|" + "---|" * len(t.headers))
                out += ["| " + " | ".join(format_value(v, t.digits) for v in r) + " |"
                        for r in t.rows]
                out.append("")
            elif kind == "f":
                f = rest[0]
                out += [f"![{f.title}](figures/{f.name}.png)", "", f"*{f.title}.* {f.caption}",
                        ""]
        return "\n".join(out)


def _anchor(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def _html_table(t: Table) -> str:
    out = []
    if t.title:
        out.append(f"<h3>{html.escape(t.title)}</h3>")
    if t.protocol:
        out.append(f"<p class='protocol'>{html.escape(t.protocol)}</p>")
    out.append("<div class='scroll'><table><thead><tr>" + "".join(
        f"<th>{html.escape(h)}</th>" for h in t.headers) + "</tr></thead><tbody>")
    for r, row in enumerate(t.rows):
        cells = []
        for c, v in enumerate(row):
            text = isinstance(v, str) and not v.startswith(("[", "±", "-"))
            cls = ("text " if text else "") + ("muted" if (r, c) in t.muted else "")
            text = html.escape(format_value(v, t.digits))
            cells.append(f"<td class='{cls.strip()}'>{text}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
    return "\n".join(out)


def write_csv(path: Path, t: Table) -> Path:
    def writer(tmp):
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            if t.stamp:
                f.write(f"# {t.stamp}\n")
            w.writerow(t.headers)
            w.writerows(["" if v is None else v for v in row] for row in t.rows)
    return atomic_write(path, writer)


def png(fig) -> bytes:
    """A matplotlib figure as PNG bytes (closed afterwards)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight",
                metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()
