"""KL terms shared by the families: beta-VAE, capacity-controlled beta-VAE, warm-up, free bits."""
from __future__ import annotations

from typing import Optional

import torch


def kl_penalty(kl_per_dim: torch.Tensor, config, step: Optional[int] = None) -> torch.Tensor:
    """The weighted KL term of the loss from per-dimension KLs of shape (batch, dim).

    ``config`` carries ``objective`` ("beta": beta * KL, Higgins et al. 2017; "capacity":
    gamma * |KL - C| with C raised linearly to ``capacity_max`` over ``capacity_steps``, Burgess
    et al. 2018), ``kl_warmup_steps`` (linear warm-up of the weight from 0) and ``free_bits``
    (nats per dimension, averaged over the batch, below which the KL is not penalised).
    ``step=None`` means training is over: full weight, full capacity.
    """
    if config.free_bits > 0:
        kl = kl_per_dim.mean(0).clamp(min=config.free_bits).sum()
    else:
        kl = kl_per_dim.sum(-1).mean()
    warm = 1.0 if step is None or config.kl_warmup_steps <= 0 else min(1.0, step / config.kl_warmup_steps)
    if config.objective == "beta":
        return warm * config.beta * kl
    done = 1.0 if step is None or config.capacity_steps <= 0 else min(1.0, step / config.capacity_steps)
    return warm * config.gamma * (kl - config.capacity_max * done).abs()


def masked_gaussian_nll(reconstruction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                        weights: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The reconstruction term every family uses: a Gaussian likelihood with unit variance over the real frames.

    ``reconstruction`` and ``target`` (batch, frames, n_mels) in normalised units, ``mask`` (batch, frames, 1) from
    `modeling.utterance.frame_mask`. Returns the negative log-likelihood of each example (batch,), up to a constant,
    and the mean squared error per real frame and band (a scalar). ``weights`` (n_mels,): each band's weight in the
    likelihood (default 1; the mean squared error is unweighted)."""
    squared = (reconstruction - target) ** 2 * mask
    weighted = squared if weights is None else squared * weights.to(squared.dtype)
    return 0.5 * weighted.sum((1, 2)), squared.sum() / (mask.sum() * target.shape[2])
