"""Speaker-disjoint splits: the research split and two sets of six 4-actor folds (``contiguous``, this project's
default, and ``emobox``, the actor assignment of the EmoBox benchmark, Ma et al., Interspeech 2024)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence, Union

import numpy as np

from .naming import NUM_ACTORS

SPLIT_ACTORS: dict[str, tuple[int, ...]] = {
    "train": tuple(range(1, 21)),
    "validation": (21, 22),
    "test": (23, 24),
}
NUM_FOLDS = 6
VALIDATION_GROUPS = 5  # groups of a fold's 20 training actors held out in turn to choose settings
FOLDS: dict[str, tuple[tuple[int, ...], ...]] = {
    "contiguous": tuple(tuple(range(4 * k + 1, 4 * k + 5)) for k in range(NUM_FOLDS)),
    "emobox": ((1, 11, 20, 21), (4, 10, 12, 14), (8, 9, 19, 23), (3, 5, 7, 24), (2, 15, 16, 18), (6, 13, 17, 22)),
}
DATASET_DIR = Path(__file__).resolve().parent


def split_of(actor: int) -> str:
    """The split (``train``, ``validation`` or ``test``) an actor (1..24) belongs to."""
    for split, actors in SPLIT_ACTORS.items():
        if actor in actors:
            return split
    raise ValueError(f"actor must be 1..24, got {actor}")


def fold_actors(fold: int, folds: str = "contiguous") -> tuple[int, ...]:
    """Held-out actors (1-based) of speaker-independent fold ``fold`` (0..5) of the fold set ``folds``
    ("contiguous": 1-4, 5-8, ..., 21-24; "emobox": EmoBox's assignment, see `FOLDS`)."""
    if folds not in FOLDS:
        raise ValueError(f"folds must be one of {sorted(FOLDS)}, got {folds!r}")
    if not 0 <= fold < NUM_FOLDS:
        raise ValueError(f"fold must be 0..{NUM_FOLDS - 1}, got {fold}")
    return FOLDS[folds][fold]


def fold_train_actors(fold: int, folds: str = "contiguous") -> tuple[int, ...]:
    """The other 20 actors of fold ``fold``: those a model of that fold trains on."""
    held_out = fold_actors(fold, folds)
    return tuple(a for a in range(1, NUM_ACTORS + 1) if a not in held_out)


def validation_actors(fold: int, group: int, groups: int = VALIDATION_GROUPS, folds: str = "contiguous") -> tuple[int, ...]:
    """Group ``group`` (0..groups-1) of fold ``fold``'s training actors, every ``groups``-th of them: the
    actors held out to choose settings inside the fold (5 groups of 4 by default)."""
    if not 0 <= group < groups:
        raise ValueError(f"validation group must be 0..{groups - 1}, got {group}")
    return fold_train_actors(fold, folds)[group::groups]


def load_all(config: str = "mel", path: Union[str, Path] = DATASET_DIR):
    """Every split of a prepared config as one `datasets.Dataset`."""
    from datasets import concatenate_datasets, load_dataset

    return concatenate_datasets(list(load_dataset(str(path), config).values()))


def select_actors(dataset, actors: Sequence[int]):
    """The rows of ``actors`` (numbered 1..24), in their order."""
    actor = dataset.with_format("numpy", columns=["actor"])[:]["actor"] + 1  # the column holds 0-based class ids
    return dataset.select(np.flatnonzero(np.isin(actor, actors)))


def load_fold(fold: int, config: str = "mel", path: Union[str, Path] = DATASET_DIR, folds: str = "contiguous"):
    """``DatasetDict(train=<the other 20 actors>, test=<the 4 held-out actors>)`` of a prepared config, for fold
    ``fold`` of the fold set ``folds`` ("contiguous" or "emobox")."""
    from datasets import DatasetDict

    full = load_all(config, path)
    return DatasetDict(train=select_actors(full, fold_train_actors(fold, folds)), test=select_actors(full, fold_actors(fold, folds)))
