"""``export-h5``: the HDF5 layout of the original research code, from a prepared ``mel`` config.

Groups ``statement_SS/Actor_AA/emotion_EE/intensity_II/repete_RR`` each hold ``log_mel``
(frames, n_mels) and ``embedding`` (256,); the feature parameters are attributes of the root.
"""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from .atomic import atomic_path
from .naming import RavdessId

INFO_FILE = "data/prepare_info.json"


def research_group(rid: RavdessId) -> str:
    """The group path of one utterance in the research layout."""
    return (
        f"statement_{rid.statement:02d}/Actor_{rid.actor:02d}/emotion_{rid.emotion:02d}"
        f"/intensity_{rid.intensity:02d}/repete_{rid.repetition:02d}"
    )


def export_h5(dataset_dir: Path, out: Path) -> int:
    """Write every utterance of ``dataset_dir``'s ``mel`` config to ``out``; returns the count."""
    from datasets import load_dataset

    dataset_dir = Path(dataset_dir)
    info_path = dataset_dir / INFO_FILE
    if not info_path.exists():
        raise FileNotFoundError(f"{dataset_dir}: not prepared (no {INFO_FILE}); run `python -m ravdess_dataset prepare` first")
    info = json.loads(info_path.read_text())
    if "mel" not in info["configs"]:
        raise FileNotFoundError(f"{dataset_dir}: the 'mel' config was not prepared; run prepare with --configs mel")
    splits = load_dataset(str(dataset_dir), "mel")
    count = 0
    with atomic_path(Path(out)) as tmp, h5py.File(tmp, "w") as h5:
        for key, value in info["feature_params"].items():
            h5.attrs[key] = json.dumps(value, sort_keys=True)
        for split in splits.values():
            for row in split.with_format("numpy").iter(batch_size=64):
                for stem, mel, emb in zip(row["file"], row["log_mel"], row["embedding"]):
                    group = h5.create_group(research_group(RavdessId.parse(stem)))
                    group.create_dataset("log_mel", data=np.asarray(mel, dtype=np.float32))
                    group.create_dataset("embedding", data=np.asarray(emb, dtype=np.float32))
                    count += 1
    return count
