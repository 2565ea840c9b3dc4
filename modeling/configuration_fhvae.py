"""Configuration of `FHVAEModel`, the factorized hierarchical VAE of Hsu, Zhang and Glass (NIPS 2017)."""
from typing import Optional, Sequence

from .configuration_common import SpeechVAEBaseConfig, option


class FHVAEConfig(SpeechVAEBaseConfig):
    """`FHVAEModel` options, on top of those of `SpeechVAEBaseConfig` (defaults: the paper's recipe; see each field's
    help). It trains on segments of its own ``segment_frames`` (20 as in the paper) cut from whole utterances every
    ``segment_hop`` frames (unset: ``segment_frames``, segments that do not overlap, as in the paper)."""

    model_type = "fhvae"
    cuts_own_segments = True
    reads_prosody = False

    segment_frames: int = option(20, "frames per segment (cut by train.py from whole utterances)")
    segment_hop: Optional[int] = option(None, "frames between segment starts, in training and in embed_utterance "
                                              "(unset: segment_frames, so that segments do not overlap)")
    hidden_size: int = option(256, "units of each one-layer LSTM (z1 encoder, z2 encoder, decoder)")
    z1_dim: int = option(32, "segment-level latent (meant to hold what changes within an utterance)")
    z2_dim: int = option(32, "sequence-level latent (meant to hold what an utterance keeps throughout)")
    num_sequences: int = option(1, "training sequences (utterances), each with a learned prior mean mu2",
                                set_by_train=True)
    alpha: float = option(10.0, "weight of the discriminative sequence-index objective log p(i | z2)")
    z2_prior_std: float = option(0.5, "std of p(z2 | mu2) = N(mu2, z2_prior_std^2 I)")
    mu2_prior_std: float = option(1.0, "std of p(mu2) = N(0, mu2_prior_std^2 I)")

    def __post_init__(self, **kwargs) -> None:
        if self.segment_hop is None:
            self.segment_hop = self.segment_frames
        for name in ("hidden_size", "z1_dim", "z2_dim", "num_sequences"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.z2_prior_std <= 0 or self.mu2_prior_std <= 0 or self.alpha < 0:
            raise ValueError("z2_prior_std and mu2_prior_std must be positive and alpha not negative")
        super().__post_init__(**kwargs)

    @classmethod
    def dataset_fields(cls, dataset_params: dict, pad_value: float, num_sequences: int,
                       prosody_padding: Optional[Sequence[float]] = None) -> dict:
        return {**super().dataset_fields(dataset_params, pad_value, num_sequences, prosody_padding), "num_sequences": num_sequences}
