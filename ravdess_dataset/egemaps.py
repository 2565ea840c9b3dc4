"""eGeMAPSv02 functionals (openSMILE, Eyben et al. 2016): the field's reference hand-crafted emotion features,
computed for the baselines of `evaluate.py`.

openSMILE's licence allows research and non-commercial use only, so `opensmile` is an extra
(``pip install 'ravdess-emotion-vae[egemaps]'``; the README's commands install it). The 88 functionals of an
utterance are computed from the ``audio`` config's waveform (16 kHz, loudness-normalised, silences trimmed: what
the models see), in worker processes, and cached per prepared dataset (``<cache>/egemaps/``), so that later
evaluations read them back.
"""
from __future__ import annotations

import functools
import io
import json
import logging
import multiprocessing
import os
import tempfile
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import soundfile as sf

from .sources import default_cache_dir

logger = logging.getLogger(__name__)

EGEMAPS_DIM = 88
INSTALL_HINT = "pip install 'ravdess-emotion-vae[egemaps]' (openSMILE: research and non-commercial use only)"


def missing() -> Optional[str]:
    """Why eGeMAPS cannot be computed here (the extra is not installed), or None."""
    try:
        import opensmile  # noqa: F401
    except ImportError:
        return f"the opensmile package is not installed: {INSTALL_HINT}"
    return None


@functools.lru_cache(maxsize=1)
def _smile():
    import opensmile

    return opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02, feature_level=opensmile.FeatureLevel.Functionals)


def egemaps_functionals(wav: np.ndarray, rate: int) -> np.ndarray:
    """The 88 eGeMAPSv02 functionals of a mono waveform."""
    return _smile().process_signal(np.asarray(wav, dtype=np.float32), rate).to_numpy(dtype=np.float32)[0]


def _from_flac(blob: bytes) -> np.ndarray:
    wav, rate = sf.read(io.BytesIO(blob), dtype="float32")
    return egemaps_functionals(wav, rate)


def cache_file(dataset_dir: Path, cache_dir: Optional[Path] = None) -> Path:
    """Where the functionals of a prepared dataset are cached: keyed by its fingerprint and openSMILE's version."""
    import opensmile

    info = Path(dataset_dir) / "data" / "prepare_info.json"
    try:
        fingerprint = json.loads(info.read_text())["fingerprint"]
    except (OSError, ValueError, KeyError):
        raise ValueError(f"{info}: missing or unreadable; prepare the dataset with `python -m ravdess_dataset prepare`") from None
    return Path(cache_dir or default_cache_dir()) / "egemaps" / f"{fingerprint[:16]}-opensmile{opensmile.__version__}.npz"


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
    ``audio`` config once and then read from the cache (written atomically: an interrupted run leaves no cache)."""
    path = cache_file(dataset_dir, cache_dir)
    if path.is_file():
        cached = np.load(path)
        row = {name: i for i, name in enumerate(cached["files"].tolist())}
        if all(name in row for name in files):
            return cached["X"][[row[name] for name in files]]
    from datasets import Audio

    from .splits import load_all

    try:
        audio = load_all("audio", dataset_dir).cast_column("audio", Audio(decode=False))
    except (FileNotFoundError, ValueError) as err:
        raise ValueError(f"{dataset_dir}: eGeMAPS is computed from the 'audio' config, which is not prepared there ({err})") from None
    names = audio["file"]
    blobs = [row["bytes"] for row in audio["audio"]]
    num_proc = num_proc or len(os.sched_getaffinity(0))
    logger.info("eGeMAPS: %d utterances with %d processes", len(blobs), num_proc)
    if num_proc > 1:
        with multiprocessing.get_context("fork").Pool(num_proc) as pool:
            x = np.stack(pool.map(_from_flac, blobs, chunksize=16))
    else:
        x = np.stack([_from_flac(blob) for blob in blobs])
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.stem}-", suffix=".npz", delete=False) as tmp:
        np.savez(tmp, X=x, files=np.array(names))
    os.replace(tmp.name, path)
    row = {name: i for i, name in enumerate(names)}
    missing_files = [name for name in files if name not in row]
    if missing_files:
        raise ValueError(f"{dataset_dir}: the 'audio' config lacks {len(missing_files)} utterances of 'mel' "
                         f"(e.g. {missing_files[0]}); prepare both configs from the same source")
    return x[[row[name] for name in files]]
