"""HDF5 feature cache, keyed by the audio file's content and the feature parameters.

One folder per parameter set (``<cache_dir>/features/<params-hash>/``) of shard files, one group per audio
content hash. Entries are written a few dozen at a time into a new shard (under a temporary name, renamed when
complete), so a run that is killed keeps every shard it finished and the next run computes only the rest; runs
that share the cache never write the same file. Every entry carries a CRC-32 of its arrays: an entry whose bytes
changed on disk, or a shard that no longer opens, is named in a warning and computed again.
"""
from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import uuid
import zlib
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import h5py
import numpy as np

logger = logging.getLogger(__name__)

CACHE_VERSION = 2  # 2: a folder of checksummed shards
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


SHARD_ENTRIES = 32  # entries buffered before they are written as one shard
COMPACT_SHARDS = 64  # more shards than this (or entries no longer needed) are merged by `commit`


def checksum(features: UtteranceFeatures) -> int:
    """CRC-32 of an entry's arrays and duration."""
    crc = zlib.crc32(repr(float(features.duration)).encode())
    for name in ARRAYS:
        crc = zlib.crc32(np.ascontiguousarray(getattr(features, name)).tobytes(), crc)
    return crc


class FeatureCache:
    """The entries of one parameter set, read from the folder's shards; new entries are written as new shards.

    `check` reads every entry once and drops (with a warning) those whose checksum does not match, so that they
    are computed again. A process using the cache holds a shared lock on the folder;
    `commit` merges shards only under an exclusive one, never under another run's feet.
    """

    def __init__(self, folder: Path, params: dict[str, Any]) -> None:
        self.folder = Path(folder)
        self.params = params
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.folder / ".lock", "a+")
        fcntl.flock(self._lock, fcntl.LOCK_SH)
        for tmp in self.folder.glob(".*.h5.tmp"):  # shards a killed run was writing
            if owner_is_gone(tmp):
                tmp.unlink(missing_ok=True)
        self._files: dict[Path, h5py.File] = {}
        self._index: dict[str, Path] = {}
        self._pending: dict[str, UtteranceFeatures] = {}
        self.dropped: list[str] = []  # damaged shards the scans removed (their entries are simply missing now)
        self._scan()

    def _scan(self, rebuild_index: bool = False) -> None:
        """Index every complete shard not yet open (with ``rebuild_index``, every open one again too); a damaged
        shard is removed with a warning."""
        if rebuild_index:
            for path, shard in self._files.items():
                self._index.update({key: path for key in shard})
        for path in sorted(self.folder.glob("*.h5")):
            if path in self._files:
                continue
            try:
                shard = h5py.File(path, "r", locking=False)
                keys = list(shard)
            except FileNotFoundError:  # replaced by another run's `check` since the listing
                continue
            except (OSError, KeyError) as err:
                if isinstance(err, OSError) and not is_damage(err):  # the system refused (permissions, open files)
                    raise FeatureCacheError(f"feature cache: cannot open {path}: {err}") from None
                logger.warning("feature cache: %s is damaged (%s); its entries will be computed again", path, err)
                self.dropped.append(str(path))
                path.unlink(missing_ok=True)
                continue
            self._files[path] = shard
            self._index.update({key: path for key in keys})

    def check(self, keys: Iterable[str]) -> list[str]:
        """Verify the checksums of the shards that hold any of ``keys``, every entry of them. A shard holding
        entries that fail is replaced by one holding only its sound entries (so that no later reader meets the bad
        ones). Returns the keys that failed, to compute again."""
        wanted = {self._index[key] for key in keys if key in self._index}
        bad: dict[Path, list[str]] = {}
        for path, shard in list(self._files.items()):
            if path not in wanted:
                continue
            for key in shard:
                try:
                    sound = checksum(self._read(shard[key], ARRAYS)) == int(shard[key].attrs["checksum"])
                except (OSError, KeyError, ValueError, TypeError):  # unreadable bytes or attributes
                    sound = False
                if not sound:
                    logger.warning("feature cache: the entry %s in %s does not match its checksum; computed again", key, path)
                    bad.setdefault(path, []).append(key)
        for path, keys in bad.items():
            shard = self._files.pop(path)
            sound = [key for key in shard if key not in keys]
            if sound:
                self._write_shard({key: (lambda k=key, f=shard: self._read(f[k], ARRAYS)) for key in sound})
            shard.close()
            path.unlink(missing_ok=True)
        if bad:
            self._index = {}
            self._scan(rebuild_index=True)
        return [key for keys in bad.values() for key in keys]

    def __contains__(self, key: str) -> bool:
        return key in self._pending or key in self._index

    def __len__(self) -> int:
        return len(set(self._index) | set(self._pending))

    def get(self, key: str, arrays: Sequence[str] = ARRAYS) -> UtteranceFeatures:
        """The cached features of one content key; only ``arrays`` are read, the others are ``None``."""
        if key in self._pending:
            features = self._pending[key]
            return UtteranceFeatures(**{n: getattr(features, n) if n in arrays else None for n in ARRAYS}, duration=features.duration)
        return self._read(self._files[self._index[key]][key], arrays)

    @staticmethod
    def _read(group: h5py.Group, arrays: Sequence[str]) -> UtteranceFeatures:
        values = {name: group[name][()] if name in arrays else None for name in ARRAYS}
        return UtteranceFeatures(**values, duration=float(group.attrs["duration"]))

    def put(self, key: str, features: UtteranceFeatures) -> None:
        """Add one entry; every `SHARD_ENTRIES` entries are written out as a shard."""
        self._pending[key] = features
        if len(self._pending) >= SHARD_ENTRIES:
            self.flush()

    def flush(self) -> None:
        """Write the buffered entries as a new shard (complete under its final name, or not there at all)."""
        if self._pending:
            path = self._write_shard({key: (lambda k=key: self._pending[k]) for key in self._pending})
            self._pending = {}
            self._scan()
            if path not in self._files:
                raise FeatureCacheError(f"feature cache: {path} was written but does not read back (is the disk full or failing?)")

    def _write_shard(self, entries: dict) -> Path:
        """``entries``: key -> a function returning its features. Returns the new shard's path."""
        name = uuid.uuid4().hex
        tmp, path = self.folder / f".{os.getpid()}-{name}.h5.tmp", self.folder / f"{name}.h5"
        try:
            with h5py.File(tmp, "w", locking=False) as shard:
                shard.attrs["params"] = json.dumps(self.params, sort_keys=True, default=str)
                for key, load in entries.items():
                    features = load()
                    group = shard.create_group(key)
                    for array in ARRAYS:
                        group.create_dataset(array, data=getattr(features, array))
                    group.attrs["duration"] = features.duration
                    group.attrs["checksum"] = checksum(features)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    def commit(self) -> None:
        """Write what is buffered; then, when there are many shards and no other process uses the cache, merge
        them into one. Every entry is kept: runs on other recordings share the folder."""
        self.flush()
        if len(self._files) <= COMPACT_SHARDS:
            return
        fcntl.flock(self._lock, fcntl.LOCK_UN)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # another run reads these shards: merge another time
            fcntl.flock(self._lock, fcntl.LOCK_SH)
            return
        try:
            merged = self._write_shard({key: (lambda k=key: self.get(k)) for key in self._index})
            old = [path for path in self._files if path != merged]
            for path in old:
                self._files.pop(path).close()
                path.unlink(missing_ok=True)
            self._index = {}
            self._scan()
        finally:
            fcntl.flock(self._lock, fcntl.LOCK_SH)

    def close(self) -> None:
        """Close the shards and release the lock; entries still buffered are discarded."""
        for shard in self._files.values():
            shard.close()
        self._files, self._index, self._pending = {}, {}, {}
        if not self._lock.closed:
            self._lock.close()


class FeatureCacheError(RuntimeError):
    """The cache folder cannot be used (the system refuses a file, or what was written does not read back)."""


def is_damage(err: OSError) -> bool:
    """Whether h5py's ``err`` means the file's bytes are not a sound HDF5 file (rather than the system refusing to
    open it: permissions, too many open files)."""
    return err.errno is None and not isinstance(err, PermissionError) and "errno =" not in str(err)


def remove_earlier_layout(features_dir: Path) -> None:
    """Remove the single-file caches (``features/<hash>.h5``) of cache version 1, which nothing reads any more."""
    for old in features_dir.glob("*.h5"):
        size = old.stat().st_size
        old.unlink(missing_ok=True)
        logger.warning("feature cache: removed %s (%.0f MB), a cache of an earlier version; its features are "
                       "computed again where needed", old, size / 1e6)


def owner_is_gone(path: Path) -> bool:
    """Whether the process that made ``path`` has ended: its name carries the owner's pid as its first number
    (``.prepare-<pid>-...``, ``.<pid>-<id>.h5.tmp``); a name without one is a leftover of an older version."""
    pid = next((int(part) for part in path.name.lstrip(".").replace(".", "-").split("-") if part.isdigit()), None)
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False
