"""The databases' own score files, each written here in the format its authors ship.

Two kinds of test: (1) round trips: the IQA-PyTorch meta CSV (``../shared/data/iqa/meta``) is
turned back into the native file it was converted from (inverting IQA-PyTorch's conversion
scripts) and the native reader must give the same items, references and scores; (2) the quirks
of each format on small hand-written files, and errors that name the file and what was expected.
"""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from conftest import shared_path
from optiqa.core.errors import InputError
from optiqa.data import iqa, iqa_native

openpyxl = pytest.importorskip("openpyxl")

# CSIQ file-name token -> the workbook's dst_type (the inverse of the reader's table, written out)
CSIQ_TOKEN_TYPE = {"AWGN": "noise", "JPEG": "jpeg", "jpeg2000": "jpeg 2000", "fnoise": "fnoise",
                   "BLUR": "blur", "contrast": "contrast"}
LIVE_COUNTS = {"jp2k": 227, "jpeg": 233, "wn": 174, "gblur": 174, "fastfading": 174}


def _csv_rows(dataset):
    spec = iqa.get_spec(dataset)
    path = shared_path("iqa", "meta", spec.meta_file)
    return spec, path, iqa.read_meta(spec, path)


def _image(ext="png") -> bytes:
    buf = io.BytesIO()
    fmt = {"png": "PNG", "bmp": "BMP", "jpg": "JPEG"}[ext]
    Image.fromarray(np.full((4, 4, 3), 100, np.uint8)).save(buf, format=fmt)
    return buf.getvalue()


def _touch(path, ext=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_image(ext or path.suffix.lower().lstrip(".")))


def _cell_array(names, shape):
    arr = np.empty(len(names), dtype=object)
    arr[:] = [np.array([n]) for n in names]
    return arr.reshape(shape)


# ---------------------------------------------------------------------------------------------
# writers of the native formats (what the authors' files look like)
# ---------------------------------------------------------------------------------------------
def write_tid(folder, rows):
    """mos_with_names.txt ('<MOS> <name>' with names in lower case, CRLF) + mos_std.txt."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mos_with_names.txt").write_bytes(
        "".join(f"{r['score']!r} {r['image'].lower()}\r\n" for r in rows).encode())
    (folder / "mos_std.txt").write_bytes(
        "".join(f"{r['extra']['std']}\r\n" for r in rows).encode())
    return folder / "mos_with_names.txt"


def write_kadid(folder, rows):
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["dist_img,ref_img,dmos,var"] + [
        f"{r['image']},{r['reference']},{r['score']!r},{r['extra']['std']}" for r in rows]
    (folder / "dmos.csv").write_text("\n".join(lines) + "\n")
    return folder / "dmos.csv"


def _csiq_table(rows):
    """all_by_image rows: (image, dst_idx, dst_type, dst_lev, dmos_std, dmos)."""
    idx = {t: i + 1 for i, t in enumerate(CSIQ_TOKEN_TYPE)}
    out = []
    for r in rows:
        image, token, level = r["image"][: -len(".png")].rsplit(".", 2)
        out.append((int(image) if image.isdigit() else image, idx[token], CSIQ_TOKEN_TYPE[token],
                    int(level), 0.05, r["score"]))
    return out


def write_csiq_xlsx(folder, rows):
    """csiq.DMOS.xlsx as published: another sheet first, then all_by_image with three title
    rows and the header in row 4 from column D."""
    folder.mkdir(parents=True, exist_ok=True)
    wb = openpyxl.Workbook()
    wb.active.title = "raw_scores"
    wb.active["A1"] = "#REF!"
    ws = wb.create_sheet("all_by_image")
    ws["A1"] = "CSIQ image quality database: DMOS"
    ws["A2"] = "sorted by image"
    header = ("image", "dst_idx", "dst_type", "dst_lev", "dmos_std", "dmos")
    for j, h in enumerate(header):
        ws.cell(row=4, column=4 + j, value=h)
    for i, row in enumerate(_csiq_table(rows)):
        for j, v in enumerate(row):
            ws.cell(row=5 + i, column=4 + j, value=v)
    wb.save(folder / "csiq.DMOS.xlsx")
    return folder / "csiq.DMOS.xlsx"


def write_csiq_txt(folder, rows):
    """The all_by_image sheet saved as tab-delimited text (title rows included)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["CSIQ image quality database: DMOS", "",
             "\t\t\timage\tdst_idx\tdst_type\tdst_lev\tdmos_std\tdmos"]
    lines += ["\t\t\t" + "\t".join(str(v) if not isinstance(v, float) else repr(v) for v in row)
              for row in _csiq_table(rows)]
    (folder / "csiq.txt").write_text("\n".join(lines) + "\n")
    return folder / "csiq.txt"


def write_live(folder, rows, realigned=True, info=True):
    """dmos_realigned.mat / refnames_all.mat with all 982 entries: the CSV's 779 distorted
    images at their readme positions, and the reference images (orgs = 1, DMOS 0) in between."""
    folder.mkdir(parents=True, exist_ok=True)
    offsets, start = {}, 0
    for f, n in LIVE_COUNTS.items():
        offsets[f], start = start, start + n
    dmos, orgs, refs = np.zeros(982), np.ones(982), [None] * 982
    for r in rows:
        f, k = r["image"].split("/")
        i = offsets[f] + int(k[3:].split(".")[0]) - 1
        dmos[i], orgs[i], refs[i] = r["score"], 0.0, r["reference"]
    last = "bikes.bmp"
    for i in range(982):  # a reference entry is a reference image; any name of the 29 will do
        refs[i] = refs[i] or last
        last = refs[i]
    var = "dmos_new" if realigned else "dmos"
    mat = {var: dmos[None], "orgs": orgs[None]}
    if realigned:
        mat["dmos_std"] = np.full((1, 982), 7.5)
    savemat(folder / ("dmos_realigned.mat" if realigned else "dmos.mat"), mat)
    savemat(folder / "refnames_all.mat", {"refnames_all": _cell_array(refs, (1, 982))})
    if info:
        for f, n in LIVE_COUNTS.items():
            (folder / f).mkdir(exist_ok=True)
            (folder / f / "info.txt").write_text("".join(
                f"{refs[offsets[f] + k - 1]} img{k}.bmp 0.5\n" for k in range(1, n + 1)))
    return folder / ("dmos_realigned.mat" if realigned else "dmos.mat")


def write_koniq(folder, rows, with_sets=True):
    """koniq10k_scores_and_distributions.csv (quoted header; MOS on the 1-5 scale, MOS_zscore
    1-100) and the GitHub koniq10k_distributions_sets.csv (MOS 1-100, set)."""
    folder.mkdir(parents=True, exist_ok=True)
    head = ["image_name", "c1", "c2", "c3", "c4", "c5", "c_total", "MOS", "SD", "MOS_zscore"]
    lines = [",".join(f'"{h}"' for h in head)]
    for r in rows:
        mos5 = 1 + 4 * float(r["score"]) / 100
        lines.append(f'"{r["image"]}",0,0.1,0.3,0.5,0.1,100,{mos5!r},{r["extra"]["std"]},'
                     f'{r["score"]!r}')
    (folder / "koniq10k_scores_and_distributions.csv").write_text("\n".join(lines) + "\n")
    if with_sets:
        names = {"train": "training", "val": "validation", "test": "test"}
        lines = ["image_name,c1,c2,c3,c4,c5,c_total,MOS,SD,set"] + [
            f"{r['image']},0,0.1,0.3,0.5,0.1,100,{r['score']!r},{r['extra']['std']},"
            f"{names[r['extra']['split']]}" for r in rows]
        (folder / "koniq10k_distributions_sets.csv").write_text("\n".join(lines) + "\n")
    return folder / "koniq10k_scores_and_distributions.csv"


def write_livec(folder, rows):
    folder.mkdir(parents=True, exist_ok=True)
    n = len(rows)
    savemat(folder / "AllMOS_release.mat",
            {"AllMOS_release": np.array([[r["score"] for r in rows]])})
    savemat(folder / "AllImages_release.mat",
            {"AllImages_release": _cell_array([r["image"] for r in rows], (n, 1))})
    savemat(folder / "AllStdDev_release.mat",
            {"AllStdDev_release": np.array([[float(r["extra"]["std"]) for r in rows]])})
    return folder / "AllMOS_release.mat"


def write_spaq(folder, rows):
    folder.mkdir(parents=True, exist_ok=True)
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Image name", "MOS", "Brightness", "Colorfulness", "Contrast", "Noisiness",
               "Sharpness"])
    for r in rows:
        ws.append([r["image"], r["score"], 50.0, 50.0, 50.0, 50.0, 50.0])
    wb.save(folder / "MOS and Image attribute scores.xlsx")
    return folder / "MOS and Image attribute scores.xlsx"


def write_pipal(folder, rows):
    labels = folder / "Train_Label"
    labels.mkdir(parents=True, exist_ok=True)
    by_ref: dict[str, list[str]] = {}
    for r in rows:
        by_ref.setdefault(r["reference"][:-4], []).append(f"{r['image']},{r['score']!r}\n")
    for ref, lines in by_ref.items():
        (labels / f"{ref}.txt").write_text("".join(lines))
    return labels


WRITERS = {"tid2013": write_tid, "tid2008": write_tid, "kadid10k": write_kadid,
           "csiq": write_csiq_xlsx, "live": write_live, "koniq10k": write_koniq,
           "livec": write_livec, "spaq": write_spaq, "pipal": write_pipal}


# ---------------------------------------------------------------------------------------------
# round trips against the IQA-PyTorch CSVs
# ---------------------------------------------------------------------------------------------
def _key(dataset, name):
    name = name.lower()
    return name[: -len(".bmp")] if dataset == "live" and name.endswith(".bmp") else name


@pytest.mark.parametrize("dataset", list(WRITERS) + ["csiq.txt"])
def test_native_reader_gives_the_csv_items(dataset, tmp_path):
    writer = write_csiq_txt if dataset == "csiq.txt" else WRITERS[dataset]
    dataset = dataset.split(".")[0]
    spec, csv_path, rows = _csv_rows(dataset)
    if dataset in ("tid2013", "tid2008", "kadid10k", "koniq10k", "livec"):
        for r in rows:
            r["extra"].setdefault("std", "0.5")
    native = writer(tmp_path / "db", rows)
    assert iqa_native.is_native(dataset, native)
    got = iqa.read_meta(spec, native)  # the hook dispatches to the native reader
    assert len(got) == len(rows)
    for want, have in zip(rows, got):
        assert _key(dataset, have["image"]) == _key(dataset, want["image"])
        assert have["score"] == float(want["score"])  # bit for bit
        if spec.kind == "fr":
            assert iqa.content_of(have["reference"]) == iqa.content_of(want["reference"])
    if dataset in ("tid2013", "tid2008", "koniq10k"):
        assert [h["extra"]["std"] for h in got] == [w["extra"]["std"] for w in rows]
    if dataset == "kadid10k":  # IQA-PyTorch names KADID's 'var' column 'std'
        assert [h["extra"]["var"] for h in got] == [w["extra"]["std"] for w in rows]
    if dataset == "koniq10k":
        assert [h["extra"]["split"] for h in got] == [w["extra"]["split"] for w in rows]


# ---------------------------------------------------------------------------------------------
# finding the files and the precedence
# ---------------------------------------------------------------------------------------------
TID_ROWS = [{"image": "I01_01_1.bmp", "reference": "I01.BMP", "score": 5.51429,
             "extra": {"std": "0.13013"}},
            {"image": "i01_01_2.bmp", "reference": "I01.BMP", "score": 5.56757,
             "extra": {"std": "0.16008"}},
            {"image": "i25_01_1.bmp", "reference": "i25.bmp", "score": 4.0,
             "extra": {"std": "0.2"}}]


def _tid_tree(root):
    """TID2013 as shipped: the file has lower-case names; on disk I01_01_1.bmp and I01.BMP are
    upper case, i25.bmp lower case."""
    for rel in ("distorted_images/I01_01_1.bmp", "distorted_images/i01_01_2.bmp",
                "distorted_images/i25_01_1.bmp", "reference_images/I01.BMP",
                "reference_images/i25.bmp"):
        _touch(root / rel, "bmp")
    return write_tid(root, TID_ROWS)


def test_tid_as_shipped_loads_without_a_csv(tmp_path, monkeypatch):
    monkeypatch.delenv(iqa.META_ENV, raising=False)
    native = _tid_tree(tmp_path)
    assert "i01_01_1.bmp" in native.read_text()  # lower case in the file, upper case on disk
    ds = iqa.load_database("tid2013", root=tmp_path)
    assert ds.meta_path == native and len(ds) == 3 and not ds.missing
    first = ds.items[0]
    assert first.dist.name == "I01_01_1.bmp" and first.ref.name == "I01.BMP"
    assert first.score == 5.51429 and first.extra == {"std": "0.13013"} and first.group == "i01"
    assert ds.items[2].ref.name == "i25.bmp" and ds.items[2].group == "i25"
    assert iqa_native.score_files("tid2013", native) == [native, tmp_path / "mos_std.txt"]


def test_precedence_explicit_then_csv_under_root_then_native_then_env(tmp_path, monkeypatch):
    native = _tid_tree(tmp_path / "root")
    csv_text = "ref_name,dist_name,mos,std\nI01.BMP,I01_01_1.bmp,1.0,0.1\n"
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "TID2013.csv").write_text(csv_text)
    monkeypatch.setenv(iqa.META_ENV, str(tmp_path / "env"))
    # the authors' file under the root wins over the CSV folder of $OPTIQA_META
    assert iqa.load_database("tid2013", root=tmp_path / "root").meta_path == native
    # a CSV put under the root on purpose wins over the authors' file
    (tmp_path / "root" / "TID2013.csv").write_text(csv_text)
    ds = iqa.load_database("tid2013", root=tmp_path / "root")
    assert ds.meta_path.name == "TID2013.csv" and len(ds) == 1
    # an explicit file always wins, native or CSV
    assert iqa.load_database("tid2013", root=tmp_path / "root", meta=native).meta_path == native


def test_two_native_files_under_the_root_is_an_error(tmp_path, monkeypatch):
    monkeypatch.delenv(iqa.META_ENV, raising=False)
    _tid_tree(tmp_path / "tid2013")
    write_tid(tmp_path / "copy", TID_ROWS)
    with pytest.raises(InputError, match="2 files named mos_with_names.txt") as err:
        iqa.load_database("tid2013", root=tmp_path)
    assert err.value.option == "meta"


def test_no_scores_names_the_native_files(tmp_path, monkeypatch):
    monkeypatch.delenv(iqa.META_ENV, raising=False)
    _touch(tmp_path / "images" / "I01_01_01.png")
    with pytest.raises(InputError, match="dmos.csv or KADID10k.csv"):
        iqa.load_database("kadid10k", root=tmp_path)


# ---------------------------------------------------------------------------------------------
# quirks and errors per format
# ---------------------------------------------------------------------------------------------
def test_tid_errors_name_the_file(tmp_path):
    p = tmp_path / "mos_with_names.txt"
    p.write_text("5.1 i01_01_1.bmp extra\n")
    with pytest.raises(InputError, match=r"mos_with_names.txt:1: expected '<MOS> <image name>'"):
        iqa_native.read_native("tid2013", p)
    p.write_text("5.1 picture.bmp\n")
    with pytest.raises(InputError, match="not of TID's form"):
        iqa_native.read_native("tid2013", p)
    p.write_text("5.1 i01_01_1.bmp\n4.0 i01_01_2.bmp\n")
    (tmp_path / "MOS_STD.TXT").write_text("0.1\n")
    with pytest.raises(InputError, match=r"MOS_STD.TXT: 1 values, expected one per line"):
        iqa_native.read_native("tid2008", p)


def test_kadid_header_is_checked(tmp_path):
    p = tmp_path / "dmos.csv"
    p.write_text("image,reference,score\nI01_01_01.png,I01.png,4.5\n")
    with pytest.raises(InputError, match=r"dmos.csv: expected columns dist_img, ref_img, dmos; "
                                         r"missing dist_img, ref_img, dmos \(found: image"):
        iqa_native.read_native("kadid10k", p)


def test_csiq_workbook_quirks(tmp_path):
    rows = [{"image": "1600.AWGN.1.png", "score": 0.061989},
            {"image": "aerial_city.jpeg2000.5.png", "score": 0.8},
            {"image": "snow_leaves.contrast.4.png", "score": 0.4}]
    path = write_csiq_xlsx(tmp_path, rows)
    got = iqa_native.read_native("csiq", path)
    assert [r["image"] for r in got] == [r["image"] for r in rows]  # 1600 stored as a number
    assert [r["reference"] for r in got] == ["1600.png", "aerial_city.png", "snow_leaves.png"]
    assert got[0]["extra"] == {"dmos_std": "0.05"}
    wb = openpyxl.load_workbook(path)
    wb["all_by_image"]["F5"] = "salt and pepper"
    wb.save(path)
    with pytest.raises(InputError, match=r"csiq.DMOS.xlsx \(sheet all_by_image, row 5\): "
                                         r"expected an image name and a distortion type of noise"):
        iqa_native.read_native("csiq", path)
    del wb["all_by_image"]
    wb.save(path)
    with pytest.raises(InputError, match=r"no sheet 'all_by_image' \(sheets: raw_scores\)"):
        iqa_native.read_native("csiq", path)


def test_csiq_text_export_without_header_is_an_error(tmp_path):
    p = tmp_path / "csiq.txt"
    p.write_text("1600\t1\tnoise\t1\t0.05\t0.06\n")
    with pytest.raises(InputError, match="csiq.txt: no header row with the columns image, "
                                         "dst_type, dst_lev, dmos"):
        iqa_native.read_native("csiq", p)


def _live_rows():
    """Three distorted images per folder, the first entry of each folder a reference copy."""
    rows = []
    for f in LIVE_COUNTS:
        for k in (2, 3, 4):
            rows.append({"image": f"{f}/img{k}.bmp", "reference": "parrots.bmp",
                         "score": 30.0 + k, "extra": {}})
    return rows


def test_live_drops_the_reference_entries_flagged_by_orgs(tmp_path, monkeypatch):
    monkeypatch.delenv(iqa.META_ENV, raising=False)
    root = tmp_path / "databaserelease2"
    native = write_live(root, _live_rows())
    for f in LIVE_COUNTS:
        for k in (1, 2, 3, 4):  # img1 (a reference copy, orgs = 1, DMOS 0) exists on disk too
            _touch(root / f / f"img{k}.bmp")
    _touch(root / "refimgs" / "parrots.bmp")
    _touch(root / "refimgs" / "bikes.bmp")
    ds = iqa.load_database("live", root=tmp_path)
    assert ds.meta_path == native
    assert len(ds) == 15 and not ds.missing  # 982 entries, 967 of them orgs = 1 here
    assert all(not it.key.endswith("/img1.bmp") for it in ds.items)
    assert ds.items[0].key == "jp2k/img2.bmp" and ds.items[0].dist.parent.name == "jp2k"
    assert ds.items[0].score == 32.0 and ds.items[0].extra == {"dmos_std": "7.5"}
    assert {it.group for it in ds.items} == {"parrots"}
    files = iqa_native.score_files("live", native)
    assert files[:2] == [native, root / "refnames_all.mat"] and len(files) == 7  # + 5 info.txt


def test_live_dmos_mat_is_read_when_the_realigned_file_is_absent(tmp_path):
    native = write_live(tmp_path, _live_rows(), realigned=False, info=False)
    got = iqa_native.read_native("live", native)
    assert native.name == "dmos.mat" and len(got) == 15 and got[0]["extra"] == {}


def test_live_info_txt_must_agree_with_refnames(tmp_path):
    native = write_live(tmp_path, _live_rows())
    info = tmp_path / "wn" / "info.txt"
    lines = info.read_text().splitlines()
    lines[2] = "caps.bmp img3.bmp 0.5"
    info.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"wn/info.txt:3: img3.bmp has reference caps.bmp, but "
                                         r"refnames_all.mat gives parrots.bmp"):
        iqa_native.read_native("live", native)
    info.write_text("parrots.bmp img175.bmp 0.5\n")
    with pytest.raises(InputError, match=r"info.txt:1: 'img175.bmp' is not one of the 174"):
        iqa_native.read_native("live", native)


def test_live_structure_errors(tmp_path):
    savemat(tmp_path / "dmos_realigned.mat", {"dmos_new": np.zeros((1, 779)),
                                              "orgs": np.zeros((1, 779))})
    with pytest.raises(InputError, match="refnames_all.mat .* must lie in the same folder"):
        iqa_native.read_native("live", tmp_path / "dmos_realigned.mat")
    savemat(tmp_path / "refnames_all.mat", {"refnames_all": _cell_array(["a.bmp"] * 779, (1, 779))})
    with pytest.raises(InputError, match=r"dmos_new has 779 entries, expected 982"):
        iqa_native.read_native("live", tmp_path / "dmos_realigned.mat")
    savemat(tmp_path / "dmos_realigned.mat", {"dmos": np.zeros((1, 982))})
    with pytest.raises(InputError, match=r"expected the variable\(s\) dmos_new, orgs; missing "
                                         r"dmos_new, orgs \(found: dmos\)"):
        iqa_native.read_native("live", tmp_path / "dmos_realigned.mat")


def test_koniq_uses_the_1_to_100_mos_and_the_split_of_the_sets_file(tmp_path):
    rows = [{"image": "10004473376.jpg", "score": 77.3836206897,
             "extra": {"std": "0.527277894494", "split": "train"}},
            {"image": "10007357496.jpg", "score": 68.7285714286,
             "extra": {"std": "0.580003024795", "split": "test"}}]
    path = write_koniq(tmp_path, rows)
    got = iqa_native.read_native("koniq10k", path)
    assert [r["score"] for r in got] == [77.3836206897, 68.7285714286]  # MOS_zscore, not MOS
    assert got[1]["extra"] == {"std": "0.580003024795", "split": "test"}
    (tmp_path / "koniq10k_distributions_sets.csv").unlink()
    assert iqa_native.read_native("koniq10k", path)[1]["extra"] == {"std": "0.580003024795"}
    path.write_text('"image_name","MOS","SD"\n"a.jpg",3.5,0.5\n')
    with pytest.raises(InputError, match="expected columns image_name, MOS_zscore; missing "
                                         "MOS_zscore"):
        iqa_native.read_native("koniq10k", path)


def test_livec_orientation_and_companion_files(tmp_path):
    rows = [{"image": f"t{i}.bmp", "score": 40.0 + i, "extra": {"std": "10"}} for i in (1, 2)]
    rows.append({"image": "100.bmp", "score": 60.5, "extra": {"std": "12.5"}})
    path = write_livec(tmp_path, rows)
    got = iqa_native.read_native("livec", path)
    assert [(r["image"], r["score"]) for r in got] == [("t1.bmp", 41.0), ("t2.bmp", 42.0),
                                                       ("100.bmp", 60.5)]
    assert got[2]["extra"] == {"std": "12.5"}
    savemat(tmp_path / "AllImages_release.mat",
            {"AllImages_release": _cell_array(["t1.bmp", "t2.bmp"], (2, 1))})
    with pytest.raises(InputError, match=r"AllImages_release.mat: 2 names, but "
                                         r"AllMOS_release.mat has 3 scores"):
        iqa_native.read_native("livec", path)
    (tmp_path / "AllImages_release.mat").unlink()
    with pytest.raises(InputError, match="AllImages_release.mat .* must lie in the same folder"):
        iqa_native.read_native("livec", path)


def test_spaq_workbook(tmp_path):
    path = write_spaq(tmp_path, [{"image": "00001.jpg", "score": 48.86},
                                 {"image": "00002.jpg", "score": 62.5}])
    got = iqa_native.read_native("spaq", path)
    assert [(r["image"], r["score"]) for r in got] == [("00001.jpg", 48.86), ("00002.jpg", 62.5)]
    wb = openpyxl.load_workbook(path)
    wb.active["B3"] = "n/a"
    wb.save(path)
    with pytest.raises(InputError, match=r"MOS and Image attribute scores.xlsx \(row 3\): 'n/a' "
                                         r"is not a number"):
        iqa_native.read_native("spaq", path)


def test_pipal_label_folder_found_under_the_root(tmp_path, monkeypatch):
    monkeypatch.delenv(iqa.META_ENV, raising=False)
    rows = [{"image": "A0001_00_00.bmp", "reference": "A0001.bmp", "score": 1520.0648},
            {"image": "A0002_10_01.bmp", "reference": "A0002.bmp", "score": 1401.5}]
    labels = write_pipal(tmp_path / "PIPAL", rows)
    for r in rows:
        _touch(tmp_path / "PIPAL" / "Train_Dist" / r["image"])
        _touch(tmp_path / "PIPAL" / "Train_Ref" / r["reference"])
    ds = iqa.load_database("pipal", root=tmp_path)
    assert ds.meta_path == labels and [it.score for it in ds.items] == [1520.0648, 1401.5]
    assert [it.group for it in ds.items] == ["a0001", "a0002"]
    assert iqa.load_database("pipal", root=tmp_path, meta=labels).meta_path == labels
    (labels / "A0003.txt").write_text("A0003_00_00.bmp 1500\n")
    with pytest.raises(InputError, match=r"A0003.txt:1: expected '<ref>_<type>_<n>.bmp,<Elo"):
        iqa_native.read_native("pipal", labels)


def test_duplicate_names_in_a_native_file(tmp_path):
    p = tmp_path / "dmos.csv"
    p.write_text("dist_img,ref_img,dmos,var\nI01_01_01.png,I01.png,4.5,0.1\n"
                 "i01_01_01.PNG,I01.png,4.4,0.1\n")
    with pytest.raises(InputError, match=r"dmos.csv: image 'i01_01_01.PNG' listed twice"):
        iqa_native.read_native("kadid10k", p)


def test_every_database_has_a_native_reader():
    assert set(iqa_native.NATIVE_FILES) == set(iqa.DATASETS) == set(iqa_native._READERS)


def test_assess_runs_on_tid2013_as_shipped(tmp_path, monkeypatch, capsys):
    """`optiqa assess -d tid2013 --root DIR` with only the authors' files (no CSV anywhere)."""
    from optiqa.cli import main
    from optiqa.data.distortions import distort
    from optiqa.data.io import write_image
    from optiqa.data.samples import load_sample

    monkeypatch.delenv(iqa.META_ENV, raising=False)
    monkeypatch.setenv("OPTIQA_CACHE", str(tmp_path / "cache"))
    rows = []
    for i, photo in enumerate(("astronaut", "chelsea", "coffee"), start=1):
        ref = load_sample(photo, 48)
        write_image(tmp_path / "reference_images" / f"I{i:02d}.BMP", ref)
        for k, kind in enumerate(("gaussian_blur", "gaussian_noise"), start=1):
            for level in range(1, 5):
                name = f"i{i:02d}_{k:02d}_{level}.bmp"
                disk = name.upper() if level == 1 else name  # upper case on disk, as TID's
                write_image(tmp_path / "distorted_images" / disk, distort(ref, kind, level))
                rows.append({"image": name, "score": 7.0 - 1.2 * level - 0.3 * k,
                             "extra": {"std": "0.1"}})
    write_tid(tmp_path, rows)
    out = tmp_path / "r.json"
    assert main(["assess", "-q", "-m", "psnr", "-d", "tid2013", "--root", str(tmp_path),
                 "--bootstrap", "0", "--json", str(out)]) == 0
    res = json.loads(out.read_text())[0]
    assert res["n"] == 24 and res["srcc"] > 0.5 and res["sign"] == 1
    assert "MOS 0-9, higher = better" in capsys.readouterr().out


def test_tid2013_file_is_refused_as_tid2008(tmp_path):
    p = tmp_path / "mos_with_names.txt"
    p.write_text("5.1 i01_17_1.bmp\n4.0 i01_18_1.bmp\n")
    assert len(iqa_native.read_native("tid2013", p)) == 2
    with pytest.raises(InputError, match=r"1 images of distortion types above 17 \(e.g. "
                                         r"i01_18_1.bmp\): this is TID2013's file"):
        iqa_native.read_native("tid2008", p)
