"""The posterior object that ``encode()`` returns, in the manner of diffusers' ``DiagonalGaussianDistribution``."""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch


class DiagonalGaussian:
    """A batch of Gaussians with diagonal covariance over the last dimension.

    Args:
        mean: (..., dim) means.
        logvar: (..., dim) log-variances (clamped to [-30, 20] for stability).
    """

    def __init__(self, mean: torch.Tensor, logvar: torch.Tensor) -> None:
        self.mean = mean
        self.logvar = logvar.clamp(-30.0, 20.0)

    @property
    def std(self) -> torch.Tensor:
        return torch.exp(0.5 * self.logvar)

    @property
    def var(self) -> torch.Tensor:
        return torch.exp(self.logvar)

    def sample(self, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """A reparameterised sample (gradients flow to ``mean`` and ``logvar``)."""
        noise = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + self.std * noise

    def mode(self) -> torch.Tensor:
        return self.mean

    def kl(self, other_mean: torch.Tensor | float = 0.0, other_logvar: torch.Tensor | float = 0.0) -> torch.Tensor:
        """KL(self || N(other_mean, exp(other_logvar))) per dimension, shape (..., dim)."""
        other_logvar = torch.as_tensor(other_logvar, dtype=self.mean.dtype, device=self.mean.device)
        return 0.5 * (other_logvar - self.logvar + (self.var + (self.mean - other_mean) ** 2) / other_logvar.exp() - 1.0)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """Log density of ``value`` per dimension, shape (..., dim)."""
        return -0.5 * (math.log(2 * math.pi) + self.logvar + (value - self.mean) ** 2 / self.var)

    def __getitem__(self, index) -> "DiagonalGaussian":
        return DiagonalGaussian(self.mean[index], self.logvar[index])

    @classmethod
    def cat(cls, parts: Sequence["DiagonalGaussian"]) -> "DiagonalGaussian":
        """The joint (still diagonal) Gaussian of independent parts, concatenated on the last dimension."""
        return cls(torch.cat([p.mean for p in parts], -1), torch.cat([p.logvar for p in parts], -1))
