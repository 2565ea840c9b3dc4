"""Batched PyTorch loading of a prepared config.

The chosen columns are converted from Arrow to tensors once (the whole ``segments`` train split
is about 125 MB); each batch is then one tensor index, not a Python loop over rows.
"""
from __future__ import annotations

import random
from typing import Optional, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: seed numpy and ``random`` from the worker's torch seed.

    Without it every forked worker inherits the same numpy state and draws the same numbers.
    """
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


class ColumnTensors(Dataset):
    """Columns of a `datasets.Dataset` (or a dict of equally long tensors) as tensors, indexed by a
    list of row indices."""

    def __init__(self, dataset, columns: Sequence[str]) -> None:
        if isinstance(dataset, dict):
            self.tensors = {name: dataset[name] for name in columns}
        else:
            self.tensors = dataset.with_format("torch", columns=list(columns))[:]
        self.num_rows = len(next(iter(self.tensors.values())))

    def __len__(self) -> int:
        return self.num_rows

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {name: tensor[index] for name, tensor in self.tensors.items()}

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        """A whole batch in one indexing per column (the DataLoader calls this instead of per-row access)."""
        index = torch.as_tensor(indices)
        return {name: tensor[index] for name, tensor in self.tensors.items()}


def _ready_batch(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``collate_fn``: `ColumnTensors.__getitems__` already returns the batch."""
    return batch


def batch_loader(
    dataset,
    batch_size: int,
    columns: Sequence[str],
    shuffle: bool = False,
    drop_last: bool = False,
    seed: Optional[int] = None,
    num_workers: int = 0,
) -> DataLoader:
    """A DataLoader over ``columns`` of ``dataset`` that yields dicts of batched tensors.

    ``seed`` fixes the shuffling order; workers are seeded with `seed_worker`.
    """
    dataset = ColumnTensors(dataset, columns)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        collate_fn=_ready_batch,
        num_workers=num_workers,
        worker_init_fn=seed_worker,
        generator=generator,
    )
