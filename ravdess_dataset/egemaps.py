"""eGeMAPSv02 functionals (openSMILE, Eyben et al. 2016): the field's reference hand-crafted emotion features,
computed for the baselines of `evaluate.py` and for models with ``input_functionals``.

openSMILE's licence allows research and non-commercial use only, so `opensmile` is an extra
(``pip install 'ravdess-emotion-vae[egemaps]'``; the README's commands install it). The 88 functionals of an
utterance are computed from the ``audio`` config's waveform (16 kHz, loudness-normalised, silences trimmed: what
the models see), in worker processes, and cached per prepared dataset (``<cache>/egemaps/``), so that later
evaluations read them back.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from . import derived
from .derived import read_flac
from .prosody import MissingOpensmile, egemaps_functionals, egemaps_smile, opensmile_module

EGEMAPS_DIM = 88
INSTALL_HINT = "pip install 'ravdess-emotion-vae[egemaps]' (openSMILE: research and non-commercial use only)"


def missing() -> Optional[str]:
    """Why eGeMAPS cannot be computed here (the extra is not installed), or None."""
    try:
        opensmile_module()
    except MissingOpensmile:
        return f"the opensmile package is not installed: {INSTALL_HINT}"
    return None


def feature_names() -> list[str]:
    """The names of the 88 eGeMAPSv02 functionals, in `egemaps_functionals`' order."""
    return list(egemaps_smile("Functionals").feature_names)


def _from_flac(blob: bytes) -> np.ndarray:
    wav, rate = read_flac(blob)
    return egemaps_functionals(wav, rate)


def _version() -> str:
    return f"opensmile{opensmile_module().__version__}-v2"


def cache_file(dataset_dir: Path, cache_dir: Optional[Path] = None) -> Path:
    """Where the functionals of a prepared dataset are cached: keyed by its fingerprint and openSMILE's version."""
    return derived.cache_file(dataset_dir, "egemaps", _version(), cache_dir)


def dataset_functionals(dataset_dir: Path, files: Sequence[str]) -> tuple[Optional[np.ndarray], Optional[str]]:
    """`dataset_egemaps` where they can be had, else None and why not (the extra is not installed, or the dataset
    lacks the ``audio`` config they are computed from)."""
    reason = missing()
    if reason is not None:
        return None, reason
    try:
        return dataset_egemaps(dataset_dir, files), None
    except ValueError as err:
        return None, str(err)


def dataset_egemaps(dataset_dir: Path, files: Sequence[str], cache_dir: Optional[Path] = None,
                    num_proc: Optional[int] = None) -> np.ndarray:
    """(len(files), 88) functionals of the utterances ``files`` (file stems) of a prepared dataset, computed from its
    ``audio`` config once and then read from the cache (`ravdess_dataset.derived.per_utterance`)."""
    return np.stack(derived.per_utterance(dataset_dir, files, "egemaps", _version(), _from_flac, cache_dir, num_proc))
