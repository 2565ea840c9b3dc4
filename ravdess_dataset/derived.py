"""Per-utterance features computed from a prepared dataset's ``audio`` config on demand and cached: optional steps
that `prepare` does not run (they would break its time budget, or need an optional package).

Each kind is cached once per prepared dataset, in ``<cache>/<kind>/<fingerprint>-<version>.npz`` (``version`` names
what the values depend on besides the audio), written atomically: an interrupted computation leaves no cache and
is simply redone. `dataset_prosody` gives the prosody frames of `ravdess_dataset.prosody`; the eGeMAPS functionals
of `ravdess_dataset.egemaps` are cached the same way. `dataset_waveforms` decodes the recordings themselves (no cache).
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import logging
import multiprocessing
import os
import zipfile
from pathlib import Path
from typing import Callable, Optional, Sequence

import librosa
import numpy as np
import soundfile as sf

from .atomic import atomic_path
from .audio import AudioConfig
from .features import MelConfig
from .front_end import prosody_of
from .prosody import EGEMAPS_VERSION, PROSODY_VERSION, ProsodyConfig, opensmile_module
from .sources import default_cache_dir

logger = logging.getLogger(__name__)


def _prepare_info(dataset_dir: Path) -> dict:
    """A prepared dataset's ``data/prepare_info.json`` (its fingerprint and feature parameters are read here)."""
    info = Path(dataset_dir) / "data" / "prepare_info.json"
    try:
        parsed = json.loads(info.read_text())
        return {"fingerprint": parsed["fingerprint"], "feature_params": parsed["feature_params"]}
    except (OSError, ValueError, KeyError, TypeError):
        raise ValueError(f"{info}: missing or unreadable; prepare the dataset with `python -m ravdess_dataset prepare`") from None


def cache_file(dataset_dir: Path, kind: str, version: str, cache_dir: Optional[Path] = None) -> Path:
    """Where the ``kind`` features of a prepared dataset are cached: keyed by its fingerprint and ``version``."""
    fingerprint = _prepare_info(dataset_dir)["fingerprint"]
    return Path(cache_dir or default_cache_dir()) / kind / f"{fingerprint[:16]}-{version}.npz"


def read_flac(blob: bytes) -> tuple[np.ndarray, int]:
    """A FLAC file of the ``audio`` config, in memory -> (float32 waveform, rate)."""
    wav, rate = sf.read(io.BytesIO(blob), dtype="float32")
    return wav, rate


def per_utterance(dataset_dir: Path, files: Sequence[str], kind: str, version: str,
                  compute: Callable[[bytes], np.ndarray], cache_dir: Optional[Path] = None,
                  num_proc: Optional[int] = None) -> list[np.ndarray]:
    """The arrays ``compute(flac_bytes)`` of the utterances ``files`` (file stems) of a prepared dataset, computed
    from every utterance of its ``audio`` config once (in ``num_proc`` processes; default: the usable cores) and
    then read from the cache. ``compute`` must be picklable (a module-level function). ValueError when the dataset
    lacks the ``audio`` config or some of ``files``."""
    path = cache_file(dataset_dir, kind, version, cache_dir)
    if path.is_file():
        try:
            names, arrays = _read(path)
        except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as err:  # EOFError: an empty file
            logger.warning("%s: damaged cache (%s); computing it again", path, err)
        else:
            row = {name: i for i, name in enumerate(names)}
            if all(name in row for name in files):
                return [arrays[row[name]] for name in files]
    names, blobs = _audio_config(dataset_dir, kind)
    items = [(f"{dataset_dir}: {kind} of {name}", blob) for name, blob in zip(names, blobs)]
    num_proc = num_proc or len(os.sched_getaffinity(0))
    logger.info("%s: %d utterances with %d processes", kind, len(items), num_proc)
    named = functools.partial(_named, compute)
    if num_proc > 1:
        with multiprocessing.get_context("fork").Pool(num_proc) as pool:
            arrays = pool.map(named, items, chunksize=16)
    else:
        arrays = [named(item) for item in items]
    _write(path, names, arrays)
    return _in_order(dataset_dir, names, arrays, files)


def _audio_config(dataset_dir: Path, kind: str) -> tuple[list[str], list[bytes]]:
    """The file stems and FLAC bytes of a prepared dataset's ``audio`` config; ValueError (saying that ``kind`` needs
    it) when it is not prepared."""
    from datasets import Audio

    from .splits import load_all

    try:
        audio = load_all("audio", dataset_dir).cast_column("audio", Audio(decode=False))
    except (FileNotFoundError, ValueError) as err:
        raise ValueError(f"{dataset_dir}: {kind} is computed from the 'audio' config, which is not prepared there ({err}); "
                         "prepare the dataset with it, `--configs mel segments audio`") from None
    return audio["file"], [row["bytes"] for row in audio["audio"]]


def _in_order(dataset_dir: Path, names: Sequence[str], values: Sequence, files: Sequence[str]) -> list:
    """``values`` (one per name of the ``audio`` config) in the order of ``files``; ValueError if some are absent."""
    row = {name: i for i, name in enumerate(names)}
    missing_files = [name for name in files if name not in row]
    if missing_files:
        raise ValueError(f"{dataset_dir}: the 'audio' config lacks {len(missing_files)} utterances of 'mel' "
                         f"(e.g. {missing_files[0]}); prepare both configs from the same source")
    return [values[row[name]] for name in files]


def dataset_waveforms(dataset_dir: Path, files: Sequence[str]) -> list[np.ndarray]:
    """The processed waveforms (front end applied, at the ``audio`` sample rate, float32) of the utterances ``files``
    of a prepared dataset, decoded from its ``audio`` config (not cached: decoding is fast): the recordings its
    log-mels were computed from. ValueError naming the utterance if one cannot be decoded or has another rate."""
    rate = _prepare_info(dataset_dir)["feature_params"]["audio"]["sample_rate"]
    names, blobs = _audio_config(dataset_dir, "a conversion made audible from its recording")
    return [_named(functools.partial(_waveform_at, rate), (f"{dataset_dir}: the audio of {name}", blob))
            for name, blob in zip(files, _in_order(dataset_dir, names, blobs, files))]


def _waveform_at(rate: int, blob: bytes) -> np.ndarray:
    wav, found = read_flac(blob)
    if found != rate:
        raise ValueError(f"sampled at {found} Hz, the dataset's audio rate is {rate} Hz")
    return wav


def _named(compute: Callable[[bytes], np.ndarray], item: tuple[str, bytes]) -> np.ndarray:
    """``compute`` of one utterance; what it raises becomes a ValueError that names the utterance."""
    where, blob = item
    try:
        return compute(blob)
    except Exception as err:  # an unreadable FLAC, a library's failure on odd audio: say which utterance
        raise ValueError(f"{where}: {type(err).__name__}: {err}") from None


def _write(path: Path, names: Sequence[str], arrays: Sequence[np.ndarray]) -> None:
    """One npz: the arrays concatenated along their first axis, with their lengths; written atomically
    (`atomic_path`), so a reader sees the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = [np.atleast_1d(a) for a in arrays]
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: np.savez adds no .npz to the name
        np.savez(f, files=np.array(names), rows=np.concatenate(arrays), lengths=np.array([len(a) for a in arrays]))


def _read(path: Path) -> tuple[list[str], list[np.ndarray]]:
    with np.load(path) as cached:
        rows, lengths, names = cached["rows"], cached["lengths"], cached["files"].tolist()
    return names, np.split(rows, np.cumsum(lengths)[:-1])


def _prosody_of_flac(feature_params: dict, source: str, blob: bytes) -> np.ndarray:
    wav, _ = read_flac(blob)
    return prosody_of(wav, AudioConfig(**feature_params["audio"]), MelConfig(**feature_params["mel"]), source)


def dataset_prosody(dataset_dir: Path, files: Sequence[str], source: str = "pyin", cache_dir: Optional[Path] = None,
                    num_proc: Optional[int] = None) -> list[np.ndarray]:
    """The prosody frames of ``source`` (`ravdess_dataset.prosody`: pyin's 3 channels, or the 25 eGeMAPS
    descriptors) of the utterances ``files`` of a prepared dataset, one row per frame of their log-mel in the ``mel``
    config: computed from the ``audio`` config's waveform (24-bit FLAC) as the feature extractor computes them from a
    recording (`front_end.prosody_of`), about 46 s (pyin) or 26 s (egemaps) for the full corpus on 2 cores, then read
    from the cache (``prosody`` and ``egemaps_frames``)."""
    feature_params = _prepare_info(dataset_dir)["feature_params"]
    if source == "egemaps":
        kind, library, settings = "egemaps_frames", f"opensmile{opensmile_module().__version__}", [EGEMAPS_VERSION]
    else:
        kind, library, settings = "prosody", f"librosa{librosa.__version__}", [PROSODY_VERSION, dataclasses.asdict(ProsodyConfig())]
    settings = json.dumps(settings + [feature_params["audio"], feature_params["mel"]], sort_keys=True)
    version = f"{library}-{hashlib.sha256(settings.encode()).hexdigest()[:8]}"
    return per_utterance(dataset_dir, files, kind, version, functools.partial(_prosody_of_flac, feature_params, source),
                         cache_dir, num_proc)
