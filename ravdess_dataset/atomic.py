"""Atomic file writes: a reader, or a run started again after a kill, finds the old file or the whole new one."""
from __future__ import annotations

import io
import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` (same folder, a hidden name ending in ``.tmp``, so that no ``*.json`` or
    ``*.png`` pattern matches one a kill left behind) for the caller to write; writers that pick a format from the name
    must be told it. When the block ends without an exception the file is flushed to disk and renamed over ``path``;
    otherwise it is removed."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        with open(tmp, "rb") as written:
            os.fsync(written.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def npz_bytes(**arrays: np.ndarray) -> bytes:
    """The bytes of ``np.savez(file, **arrays)``, for `write_atomic` (which then keeps the target's name as given)."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def write_atomic(path: Path, content: str | bytes) -> None:
    """``path.write_text(content)`` (or ``write_bytes``), atomically (`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(content) if isinstance(content, bytes) else tmp.write_text(content)
