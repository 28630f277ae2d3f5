"""Run names and study-folder paths have one owner each (issue 19, item 2).

:mod:`optiqa.study.names` builds and parses every run name; :class:`StudyFolder` gives every path
inside a study folder. The source scan below fails when another module spells a name's prefix or
a study sub-folder in a string again (docstrings excepted).
"""
from __future__ import annotations

import ast

import pytest

from optiqa.core.runs import RunFolder
from optiqa.core.sources import all_modules, module_file
from optiqa.study import names
from optiqa.study.folder import StudyFolder


def test_cell_names_round_trip_their_settings():
    assert names.cell_name("sr_x4", "ssim", "none", 0.0) == "sr_x4__ssim__none"
    assert names.cell_name("sr_x4", "ssim", "patch", 0.005) == "sr_x4__ssim__patch__w0.005"
    assert names.cell_name("sr_x4", "l1", "patch", 1e-5, seed=2) == "sr_x4__l1__patch__w1e-05__s2"


@pytest.mark.parametrize("kind", names.BASELINES)
def test_baseline_names_parse_back(kind):
    name = names.baseline_name(kind, "sr_x4")
    assert name == f"{kind}__sr_x4"
    assert names.parse_baseline(name) == (kind, "sr_x4")
    assert names.is_degraded(name) == (kind in ("bicubic", "input"))


def test_names_that_are_not_baselines_do_not_parse_as_one():
    assert names.parse_baseline("sr_x4__ssim__none") is None
    assert names.parse_baseline("pretrain__sr_x4__s1") is None   # a task never holds '__'
    assert names.parse_baseline("pretrain") is None
    with pytest.raises(ValueError, match="unknown baseline kind"):
        names.baseline_name("bilinear", "sr_x4")


def test_degraded_baseline_follows_the_scale():
    assert names.degraded_name("sr_x4", 4) == "bicubic__sr_x4"
    assert names.degraded_name("denoise", 1) == "input__denoise"


def test_transfer_and_zero_shot_names_parse_back():
    cell = "sr_x4__ssim__unet__w0.01"
    gan = names.transfer_name("probe", "vgg16", "gan", cell)
    assert gan == f"probe__vgg16__gan__{cell}"
    assert names.parse_transfer_gan(gan) == ("probe__vgg16", cell)
    assert names.parse_transfer_gan(names.transfer_name("probe", "vgg16", "imagenet")) is None
    assert names.parse_zeroshot(names.zeroshot_name(cell)) == cell
    assert names.parse_zeroshot(gan) is None
    with pytest.raises(ValueError, match="cell"):
        names.transfer_name("probe", "vgg16", "gan")


def test_the_study_folder_places_runs_where_run_folders_find_their_study(tmp_path):
    folder = StudyFolder(tmp_path)
    run = folder.run("sr_x4__ssim__none")
    assert run == RunFolder.in_study(tmp_path, "sr_x4__ssim__none")
    assert run.study_root == tmp_path
    assert folder.lock("evaluate", "x").name == "evaluate__x.lock"
    assert folder.manifest.relative_to(tmp_path).as_posix() == "images/manifest.json"
    assert folder.judgments.relative_to(tmp_path).as_posix() == "judgments.db"
    assert folder.run_image("a", "sr_x4", "Set5", "baby").relative_to(folder.run_images("a")) \
        .as_posix() == "sr_x4/Set5/baby.png"
    assert folder.test_image("input", "t", "s", "k").is_relative_to(folder.test_images("input"))
    with pytest.raises(ValueError, match="reference"):
        folder.test_images("runs")


# spellings only names.py / folder.py / core/runs.py may hold outside docstrings
NAME_PARTS = ("pretrain__", "bicubic__", "input__", "start__", "zeroshot__", "__gan__")
OWNERS = {"optiqa.study.names", "optiqa.study.folder", "optiqa.core.runs"}
# where a bare "__" can only be the run-name separator (elsewhere it marks dunder names)
RUN_USERS = ("optiqa.study.", "optiqa.report.", "optiqa.train.", "optiqa.transfer.",
             "optiqa.judge.", "optiqa.cli.")


def _strings(tree: ast.AST):
    """String constants and f-string pieces, docstrings left out."""
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
            and n.body and isinstance(n.body[0], ast.Expr)
            and isinstance(n.body[0].value, ast.Constant)}
    for n in ast.walk(tree):
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs:
            yield n.lineno, n.value
        elif isinstance(n, ast.JoinedStr):  # f"{x}__{y}": the separator sits between values
            parts = [v.value if isinstance(v, ast.Constant) else "{}" for v in n.values]
            yield n.lineno, "".join(parts)


def test_no_other_module_spells_a_run_name():
    found = []
    for m in all_modules():
        if m in OWNERS:
            continue
        tree = ast.parse(module_file(m).read_text())
        for line, text in _strings(tree):
            separator = m.startswith(RUN_USERS) and (text == "__" or "{}__{}" in text)
            if separator or any(p in text for p in NAME_PARTS):
                found.append(f"{m}:{line}: {text!r}")
    assert not found, "run names built outside optiqa.study.names:\n" + "\n".join(found)


def test_the_judging_app_reads_the_files_the_study_folder_names(tmp_path):
    """The judge does not import the study package (the study imports the judge); both take
    the manifest's and the vote store's paths from optiqa.core.layout, and nothing else spells
    them."""
    import json

    from optiqa.judge import fit_study
    from optiqa.judge.manifest import load_manifest
    from optiqa.judge.store import JudgmentStore, Trial

    folder = StudyFolder(tmp_path)
    folder.manifest.parent.mkdir(parents=True)
    folder.manifest.write_text(json.dumps({"version": 1, "study": "s", "runs": {
        "a": {"label": "A", "images": {"i": "images/runs/a/i.png"}},
        "b": {"label": "B", "images": {"i": "images/runs/b/i.png"}}}}))
    assert list(load_manifest(tmp_path, check_files=False).runs) == ["a", "b"]
    with pytest.raises(Exception, match="no image manifest"):
        load_manifest(tmp_path / "elsewhere", check_files=False)
    assert not fit_study(tmp_path, n_boot=0).has_votes
    store = JudgmentStore(folder.judgments)  # where the study looks for the votes
    trial = Trial("t1", "rater", 1, "i", 0, (0, 0, 8, 8), "a", "b", None, 0.0)
    store.issue(trial)
    store.record_vote(trial, "left", 500.0)
    store.close()
    assert fit_study(tmp_path, n_boot=0).has_votes  # where the judge looks for them
    found = [f"{m}:{line}: {text!r}" for m in all_modules() if m != "optiqa.core.layout"
             for line, text in _strings(ast.parse(module_file(m).read_text()))
             if text in ("images/manifest.json", "judgments.db")
             or (m.startswith(("optiqa.judge.", "optiqa.study.")) and text == "manifest.json")]
    assert not found, "study files spelled outside optiqa.core.layout:\n" + "\n".join(found)


def test_no_other_study_module_spells_a_study_sub_folder():
    subfolders = {"runs", "evaluate", "assess", "transfer", "images", "locks", "slurm", "logs",
                  "configs", "diagnose", "reference"}
    found = []
    for m in all_modules():
        if not m.startswith(("optiqa.study.", "optiqa.report.")) or m in OWNERS:
            continue
        tree = ast.parse(module_file(m).read_text())
        for n in ast.walk(tree):
            # a path join: `<something> / "runs"`
            if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Div) and \
                    isinstance(n.right, ast.Constant) and n.right.value in subfolders:
                found.append(f"{m}:{n.lineno}: / {n.right.value!r}")
    assert not found, "study paths joined outside StudyFolder:\n" + "\n".join(found)
