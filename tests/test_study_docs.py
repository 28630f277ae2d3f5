"""docs/study.md describes every module of the study package in one sentence, and nothing else.

Issue 19: "the study package's modules each fit one sentence of the docs". The table is written
by hand (a sentence a reader can trust is not generated); this test keeps it complete: a new
module without a row, a row for a module that is gone, or a row of two sentences fails here.
"""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "src" / "optiqa" / "study"
DOC = ROOT / "docs" / "study.md"
HEADING = "### The package's modules (`src/optiqa/study/`)"
ROW = re.compile(r"^\| `(?P<module>[a-z_]+\.py)` \| (?P<sentence>.*) \|$")
# a sentence boundary: end punctuation, space, a capital (not "e.g. x" or "optiqa.stats.x")
BOUNDARY = re.compile(r"[.!?] +[A-Z]")


def _rows() -> list[tuple[str, str]]:
    text = DOC.read_text()
    assert HEADING in text, f"{DOC.name} lost its section {HEADING!r}"
    section = text.split(HEADING, 1)[1].split("\n#", 1)[0]
    return [(m["module"], m["sentence"]) for line in section.splitlines()
            if (m := ROW.match(line))]


def test_every_study_module_has_one_row_of_one_sentence():
    rows = _rows()
    listed = [module for module, _ in rows]
    modules = sorted(p.name for p in STUDY.glob("*.py") if p.name != "__init__.py")
    assert len(listed) == len(set(listed)), f"listed twice: {sorted(listed)}"
    missing, gone = sorted(set(modules) - set(listed)), sorted(set(listed) - set(modules))
    assert not missing, (f"study modules without a sentence in {DOC.name} ({HEADING}): "
                         f"{missing}; add a row `| `name.py` | What it does, in one sentence. |`")
    assert not gone, f"{DOC.name} describes modules that no longer exist: {gone}"
    for module, sentence in rows:
        assert sentence.endswith(".") and sentence[0].isupper(), (module, sentence)
        assert not BOUNDARY.search(sentence), f"{module}: more than one sentence: {sentence!r}"
