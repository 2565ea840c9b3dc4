"""Configuration of `FHVAEModel`, the factorized hierarchical VAE of Hsu, Zhang and Glass (NIPS 2017)."""
from __future__ import annotations

from .configuration_common import SpeechVAEBaseConfig


class FHVAEConfig(SpeechVAEBaseConfig):
    """`FHVAEModel` options, on top of those of `SpeechVAEBaseConfig` (defaults: the paper's recipe).

    Args:
        hidden_size: units of each one-layer LSTM (z1 encoder, z2 encoder, decoder).
        z1_dim: segment-level latent (meant to hold what changes within an utterance).
        z2_dim: sequence-level latent (meant to hold what an utterance keeps throughout).
        num_sequences: training sequences (utterances); each gets a learned prior mean mu2.
        alpha: weight of the discriminative sequence-index objective log p(i | z2).
        z2_prior_std: std of p(z2 | mu2) = N(mu2, z2_prior_std^2 I).
        mu2_prior_std: std of p(mu2) = N(0, mu2_prior_std^2 I).

    ``segment_frames`` defaults to 20 and ``segment_hop`` to 20 here, as in the paper.
    """

    model_type = "fhvae"

    segment_frames: int = 20
    segment_hop: int = 20
    hidden_size: int = 256
    z1_dim: int = 32
    z2_dim: int = 32
    num_sequences: int = 1
    alpha: float = 10.0
    z2_prior_std: float = 0.5
    mu2_prior_std: float = 1.0

    def __post_init__(self, **kwargs) -> None:
        for name in ("hidden_size", "z1_dim", "z2_dim", "num_sequences"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.z2_prior_std <= 0 or self.mu2_prior_std <= 0 or self.alpha < 0:
            raise ValueError("z2_prior_std and mu2_prior_std must be positive and alpha not negative")
        super().__post_init__(**kwargs)
