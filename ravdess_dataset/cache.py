"""HDF5 feature cache, keyed by the audio file's content and the feature parameters.

One file per parameter set (``<cache_dir>/features/<params-hash>.h5``), one group per audio
content hash. A run writes new entries into ``<file>.tmp``, copies over the old entries it
still needs, and renames the result into place: a killed run leaves the old cache intact.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import h5py
import numpy as np

CACHE_VERSION = 1
ARRAYS = ("wav", "log_mel", "embedding", "partial_embeddings")


@dataclasses.dataclass
class UtteranceFeatures:
    """Everything computed from one audio file.

    Shapes: ``wav`` (samples,) at the front end's rate; ``log_mel`` (frames, n_mels);
    ``embedding`` (256,); ``partial_embeddings`` (windows, 256). ``duration`` is the decoded
    length in seconds before silence trimming. An array not read from the cache is ``None``.
    """

    wav: Optional[np.ndarray]
    log_mel: Optional[np.ndarray]
    embedding: Optional[np.ndarray]
    partial_embeddings: Optional[np.ndarray]
    duration: float


def content_key(path: Path) -> str:
    """SHA-1 of the file's bytes (the audio, whatever its name or folder)."""
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def params_key(params: dict[str, Any]) -> str:
    """A short stable hash of the feature parameters."""
    blob = json.dumps({"cache_version": CACHE_VERSION, **params}, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


class FeatureCache:
    """Read the entries of one parameter set and stage new ones for an atomic commit."""

    def __init__(self, path: Path, params: dict[str, Any]) -> None:
        self.path = Path(path)
        self.params = params
        self._old: Optional[h5py.File] = None
        if self.path.exists():
            try:
                self._old = h5py.File(self.path, "r")
            except OSError:  # a corrupt cache is not trusted; it is rebuilt
                self._old = None
        self._tmp_path = self.path.with_name(self.path.name + ".tmp")
        self._new: Optional[h5py.File] = None

    def __contains__(self, key: str) -> bool:
        return (self._new is not None and key in self._new) or (self._old is not None and key in self._old)

    def get(self, key: str, arrays: Sequence[str] = ARRAYS) -> UtteranceFeatures:
        """The cached features of one content key; only ``arrays`` are read, the others are ``None``."""
        group = self._new[key] if self._new is not None and key in self._new else self._old[key]
        values = {name: group[name][()] if name in arrays else None for name in ARRAYS}
        return UtteranceFeatures(**values, duration=float(group.attrs["duration"]))

    def put(self, key: str, features: UtteranceFeatures) -> None:
        """Stage one entry (written to the temporary file now, published by `commit`)."""
        if self._new is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._new = h5py.File(self._tmp_path, "w")
        group = self._new.require_group(key)
        for name in ARRAYS:
            if name in group:
                del group[name]
            group.create_dataset(name, data=getattr(features, name))
        group.attrs["duration"] = features.duration

    def commit(self, keep: Iterable[str]) -> None:
        """Publish staged entries plus the old entries listed in ``keep``; no-op if nothing is new."""
        if self._new is None:
            return
        if self._old is not None:
            for key in keep:
                if key in self._old and key not in self._new:
                    self._old.copy(self._old[key], self._new, name=key)
            self._old.close()
        self._new.attrs["params"] = json.dumps(self.params, sort_keys=True, default=str)
        self._new.flush()
        self._new.close()
        os.replace(self._tmp_path, self.path)
        self._old, self._new = h5py.File(self.path, "r"), None

    def close(self) -> None:
        """Close the files; staged entries that were not committed are discarded."""
        for f in (self._old, self._new):
            if f is not None:
                f.close()
        if self._new is not None:
            self._tmp_path.unlink(missing_ok=True)
        self._old = self._new = None
