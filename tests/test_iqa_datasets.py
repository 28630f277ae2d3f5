"""IQA database loaders against the real meta-info files, with tiny fake image trees."""
import csv
import io
import os

import numpy as np
import pytest
from PIL import Image

from conftest import shared_path
from optiqa.data import iqa
from optiqa.core.errors import InputError, UnknownNameError

# dataset -> (meta file, rows, image column, reference column or None, lower_better)
EXPECTED = {
    "live": ("LIVEIQA.csv", 779, "dist_name", "ref_name", True),
    "csiq": ("CSIQ.csv", 866, "dist_name", "ref_name", True),
    "tid2008": ("TID2008.csv", 1700, "dist_name", "ref_name", False),
    "tid2013": ("TID2013.csv", 3000, "dist_name", "ref_name", False),
    "kadid10k": ("KADID10k.csv", 10125, "dist_name", "ref_name", False),
    "pipal": ("PIPAL.csv", 23200, "dist_name", "hq_name", False),
    "koniq10k": ("KonIQ10k.csv", 10073, "img_name", None, False),
    "spaq": ("SPAQ.csv", 11125, "Image name", None, False),
    "livec": ("LIVEChallenge.csv", 1169, "img_name", None, False),
}

_BYTES = {}


def _image_bytes(ext: str) -> bytes:
    """A real 4x4 image encoded once per format (files are copies of it)."""
    fmt = {"png": "PNG", "bmp": "BMP", "jpg": "JPEG", "jpeg": "JPEG"}[ext.lower()]
    if fmt not in _BYTES:
        buf = io.BytesIO()
        Image.fromarray(np.full((4, 4, 3), 128, np.uint8)).save(buf, format=fmt)
        _BYTES[fmt] = buf.getvalue()
    return _BYTES[fmt]


def _layout(dataset: str, name: str, is_ref: bool) -> str:
    """Where the official release keeps a file (with TID's names in the other case)."""
    if dataset == "live":
        return f"databaserelease2/{'refimgs/' + name if is_ref else name + '.bmp'}"
    if dataset == "csiq":
        kind = name.split(".")[1].lower()
        return f"CSIQ/{'src_imgs' if is_ref else 'dst_imgs/' + kind}/{name}"
    if dataset.startswith("tid"):
        return f"{dataset}/{'reference_images' if is_ref else 'distorted_images'}/{name.swapcase()}"
    if dataset == "kadid10k":
        return f"kadid10k/images/{name}"
    if dataset == "pipal":
        return f"{'Train_Ref' if is_ref else 'Train_Dist'}/{name}"
    return {"koniq10k": "1024x768", "spaq": "TestImage", "livec": "Images"}[dataset] + "/" + name


def _meta_rows(dataset):
    meta_file, _, img_col, ref_col, _ = EXPECTED[dataset]
    path = shared_path("iqa", "meta", meta_file)
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    i = header.index(img_col)
    j = header.index(ref_col) if ref_col else None
    return path, [(r[i], r[j] if j is not None else None) for r in rows[1:]]


def _write_tree(root, dataset, rows):
    for dist, ref in rows:
        for name, is_ref in ((dist, False), (ref, True)):
            if name is None:
                continue
            p = root / _layout(dataset, name, is_ref)
            if not p.exists():
                p.parent.mkdir(parents=True, exist_ok=True)
                ext = os.path.splitext(p.name)[1][1:] or "bmp"
                p.write_bytes(_image_bytes(ext))


@pytest.mark.parametrize("dataset", list(EXPECTED))
def test_every_loader_reads_the_real_meta_file(dataset, tmp_path):
    meta_path, rows = _meta_rows(dataset)
    _, n_rows, _, ref_col, lower_better = EXPECTED[dataset]
    assert len(rows) == n_rows
    chosen = rows[:12]
    _write_tree(tmp_path, dataset, chosen)

    with pytest.raises(InputError) as err:
        iqa.load_dataset(dataset, root=tmp_path, meta=meta_path)
    refs = {r for _, r in rows if r is not None}
    n_missing = (n_rows - 12) + len(refs - {r for _, r in chosen})
    assert f"{n_missing} image(s)" in str(err.value)
    assert "allow missing images" in str(err.value) and err.value.option == "allow_missing"

    ds = iqa.load_dataset(dataset, root=tmp_path, meta=meta_path, allow_missing=True)
    assert len(ds) == 12 and len(ds.missing) == n_missing
    assert any("NOT comparable" in n for n in ds.notes)
    assert ds.spec.lower_better is lower_better
    assert ds.spec.kind == ("fr" if ref_col else "nr")
    for it, (dist, ref) in zip(ds.items, chosen):
        assert it.key == dist and it.dist.is_file()
        assert (it.ref is not None and it.ref.is_file()) == (ref is not None)
        assert np.isfinite(it.score)


@pytest.mark.parametrize("dataset, n_contents", [("live", 29), ("csiq", 30), ("tid2013", 25)])
def test_full_trees_load_without_missing_images(dataset, n_contents, tmp_path):
    meta_path, rows = _meta_rows(dataset)
    _write_tree(tmp_path, dataset, rows)
    ds = iqa.load_dataset(dataset, root=tmp_path, meta=meta_path)
    assert len(ds) == len(rows) and not ds.missing and not ds.notes
    assert len(set(ds.groups.tolist())) == n_contents


def test_live_names_without_extension_resolve_by_folder(tmp_path):
    meta_path, rows = _meta_rows("live")
    _write_tree(tmp_path, "live", rows)
    ds = iqa.load_dataset("live", root=tmp_path, meta=meta_path)
    by_key = {it.key: it for it in ds.items}
    # 'img2' exists in several distortion folders: each name finds its own folder
    assert by_key["jp2k/img2"].dist.parent.name == "jp2k"
    assert by_key["jpeg/img2"].dist.parent.name == "jpeg"
    assert by_key["jp2k/img2"].group == "studentsculpture"
    assert ds.spec.score_meaning.startswith("DMOS")


def test_tid_mixed_case_names(tmp_path):
    meta_path, rows = _meta_rows("tid2013")
    assert any(d != d.lower() for d, _ in rows) and any(d == d.lower() for d, _ in rows)
    _write_tree(tmp_path, "tid2013", rows[:30])  # files written in the opposite case
    ds = iqa.load_dataset("tid2013", root=tmp_path, meta=meta_path, allow_missing=True)
    assert len(ds) == 30
    assert ds.items[0].ref.name == "i01.bmp" and ds.items[0].group == "i01"


def test_spaq_header_with_spaces(tmp_path):
    meta_path, rows = _meta_rows("spaq")
    assert open(meta_path).readline().startswith("Image name,MOS")
    _write_tree(tmp_path, "spaq", rows[:3])
    ds = iqa.load_dataset("spaq", root=tmp_path, meta=meta_path, allow_missing=True)
    assert [it.key for it in ds.items] == ["00001.jpg", "00002.jpg", "00003.jpg"]
    assert ds.items[0].score == pytest.approx(48.86)
    # extra spaces and another case in the header are accepted too
    (tmp_path / "m.csv").write_text("  IMAGE   name , mos\n00001.jpg,50\n")
    ds = iqa.load_dataset("spaq", root=tmp_path, meta=tmp_path / "m.csv")
    assert ds.items[0].score == 50


def test_koniq_keeps_official_split_and_each_image_is_its_own_group(tmp_path):
    meta_path, rows = _meta_rows("koniq10k")
    _write_tree(tmp_path, "koniq10k", rows[:5])
    ds = iqa.load_dataset("koniq", root=tmp_path, meta=meta_path, allow_missing=True)
    assert ds.name == "koniq10k"
    assert {it.extra["split"] for it in ds.items} <= {"train", "val", "test"}
    assert len(set(ds.groups.tolist())) == 5


# --------------------------------------------------------------------------- meta resolution
def _tiny_csiq(root):
    (root / "imgs").mkdir(parents=True)
    for n in ("a.png", "a.x.1.png", "a.x.2.png"):
        (root / "imgs" / n).write_bytes(_image_bytes("png"))
    return "ref_name,dist_name,dmos\na.png,a.x.1.png,0.1\na.png,a.x.2.png,0.5\n"


def test_meta_found_by_option_under_root_or_env(tmp_path, monkeypatch):
    text = _tiny_csiq(tmp_path / "root")
    monkeypatch.delenv(iqa.META_ENV, raising=False)
    with pytest.raises(InputError) as err:
        iqa.load_dataset("csiq", root=tmp_path / "root")
    msg = str(err.value)
    assert "(meta)" in msg and "CSIQ.csv" in msg and "$OPTIQA_META" in msg

    (tmp_path / "elsewhere.csv").write_text(text)
    assert len(iqa.load_dataset("csiq", root=tmp_path / "root",
                                meta=tmp_path / "elsewhere.csv")) == 2

    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "CSIQ.csv").write_text(text)
    monkeypatch.setenv(iqa.META_ENV, str(tmp_path / "env"))
    ds = iqa.load_dataset("csiq", root=tmp_path / "root")
    assert ds.meta_path == tmp_path / "env" / "CSIQ.csv"

    (tmp_path / "root" / "meta").mkdir()
    (tmp_path / "root" / "meta" / "meta_info_CSIQDataset.csv").write_text(text)  # IQA-PyTorch
    ds = iqa.load_dataset("csiq", root=tmp_path / "root")
    assert ds.meta_path.name == "meta_info_CSIQDataset.csv"  # under --root wins over the env


@pytest.mark.parametrize("content, message", [
    ("name,score\na.x.1.png,1\n", "missing ref_name, dist_name, dmos"),
    ("ref_name,dist_name,dmos\na.png,a.x.1.png,high\n", "is not a number"),
    ("ref_name,dist_name,dmos\na.png,a.x.1.png,1\na.png,A.X.1.png,2\n", "listed twice"),
    ("", "empty meta file"),
])
def test_bad_meta_files(tmp_path, content, message):
    _tiny_csiq(tmp_path)
    (tmp_path / "m.csv").write_text(content)
    with pytest.raises(InputError, match=message):
        iqa.load_dataset("csiq", root=tmp_path, meta=tmp_path / "m.csv")


def test_empty_or_absent_root(tmp_path):
    with pytest.raises(InputError, match="no image files"):
        iqa.load_dataset("kadid10k", root=tmp_path)
    with pytest.raises(InputError, match="not a folder"):
        iqa.load_dataset("kadid10k", root=tmp_path / "nope")
    with pytest.raises(InputError, match="needs its root"):
        iqa.load_dataset("kadid10k")


def test_unknown_dataset_lists_names():
    from optiqa.data.datasets import load_dataset

    with pytest.raises(UnknownNameError) as err:
        load_dataset("tid2099", root=".")
    assert "kadid10k" in str(err.value) and "synthetic" in str(err.value)
    assert "did you mean 'tid2013'" in str(err.value)


def test_ambiguous_names_take_the_shallowest_and_say_so(tmp_path):
    text = _tiny_csiq(tmp_path)
    (tmp_path / "imgs" / "backup").mkdir()
    (tmp_path / "imgs" / "backup" / "a.x.1.png").write_bytes(_image_bytes("png"))
    (tmp_path / "m.csv").write_text(text)
    ds = iqa.load_dataset("csiq", root=tmp_path, meta=tmp_path / "m.csv")
    assert ds.items[0].dist == tmp_path / "imgs" / "a.x.1.png"
    assert any("several files" in n for n in ds.notes)


def test_index_walks_once_and_matches_case_insensitively(tmp_path, monkeypatch):
    (tmp_path / "A" / "B").mkdir(parents=True)
    (tmp_path / "A" / "B" / "Img1.BMP").write_bytes(_image_bytes("bmp"))
    calls = []
    real_walk = os.walk
    monkeypatch.setattr(iqa.os, "walk", lambda *a, **k: calls.append(1) or real_walk(*a, **k))
    index = iqa.ImageIndex(tmp_path)
    assert index.find("img1.bmp") == index.find("IMG1") == index.find("b/img1")
    assert index.find("c/img1") is None and index.find("img2.bmp") is None
    assert len(calls) == 1


def test_content_split_keeps_contents_apart():
    groups = np.repeat([f"c{i}" for i in range(10)], 4)
    train, test = iqa.content_split(groups, 0.2, seed=3)
    assert not set(groups[train]) & set(groups[test])
    assert len(set(groups[test])) == 2 and len(train) + len(test) == 40
    again = iqa.content_split(groups, 0.2, seed=3)
    assert (again[1] == test).all()
