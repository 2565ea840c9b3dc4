"""Speaker-disjoint splits: the research split and the six 4-actor folds."""
from __future__ import annotations

from pathlib import Path
from typing import Union

SPLIT_ACTORS: dict[str, tuple[int, ...]] = {
    "train": tuple(range(1, 21)),
    "validation": (21, 22),
    "test": (23, 24),
}
NUM_FOLDS = 6
DATASET_DIR = Path(__file__).resolve().parent


def split_of(actor: int) -> str:
    """The split (``train``, ``validation`` or ``test``) an actor (1..24) belongs to."""
    for split, actors in SPLIT_ACTORS.items():
        if actor in actors:
            return split
    raise ValueError(f"actor must be 1..24, got {actor}")


def fold_actors(fold: int) -> tuple[int, ...]:
    """Held-out actors (1-based) of speaker-independent fold ``fold`` (0..5): 1-4, 5-8, ..., 21-24."""
    if not 0 <= fold < NUM_FOLDS:
        raise ValueError(f"fold must be 0..{NUM_FOLDS - 1}, got {fold}")
    return tuple(range(4 * fold + 1, 4 * fold + 5))


def load_fold(fold: int, config: str = "mel", path: Union[str, Path] = DATASET_DIR):
    """``DatasetDict(train=<the other 20 actors>, test=<the 4 held-out actors>)`` of a prepared config."""
    from datasets import concatenate_datasets, load_dataset, DatasetDict

    full = concatenate_datasets(list(load_dataset(str(path), config).values()))
    held_out = {a - 1 for a in fold_actors(fold)}  # the actor column holds 0-based class ids
    return DatasetDict(
        train=full.filter(lambda a: [x not in held_out for x in a], input_columns="actor", batched=True),
        test=full.filter(lambda a: [x in held_out for x in a], input_columns="actor", batched=True),
    )
