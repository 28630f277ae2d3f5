"""The spellings of the study-folder files that workflows beside the study package read.

:class:`optiqa.study.folder.StudyFolder` owns every path inside a study folder; the judging app
(:mod:`optiqa.judge`) reads two of them without depending on the study package, which itself
imports the judge (its analysis fits the votes). Both take these paths from here, the layer
below both, so each is spelled once: the image manifest the study writes and the app serves,
and the SQLite store of the raters' votes.
"""
from __future__ import annotations

import os
from pathlib import Path

IMAGES = "images"                  # the study's registered images, below the study folder
MANIFEST = "manifest.json"         # inside IMAGES: every image the study registers
JUDGMENTS = "judgments.db"         # the raters' votes, written only by the judging server


def images_dir(study: str | os.PathLike) -> Path:
    """``<study>/images``."""
    return Path(study) / IMAGES


def image_manifest(study: str | os.PathLike) -> Path:
    """``<study>/images/manifest.json``."""
    return images_dir(study) / MANIFEST


def judgments_db(study: str | os.PathLike) -> Path:
    """``<study>/judgments.db``."""
    return Path(study) / JUDGMENTS
