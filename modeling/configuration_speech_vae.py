"""Configuration of `SpeechVAEModel`: a convolutional VAE over fixed-length log-mel segments."""
from __future__ import annotations

from .configuration_common import SpeechVAEBaseConfig
from .layers import check_invertible

POOLINGS = ("mean", "mean_std")


class SpeechVAEConfig(SpeechVAEBaseConfig):
    """`SpeechVAEModel` options, on top of those of `SpeechVAEBaseConfig`.

    Args:
        latent_dim: size of the latent z.
        conv_channels: channels of the stride-2 convolutions; ``n_mels`` and ``segment_frames``
            must be multiples of 2 ** len(conv_channels).
        pooling: how `embed_utterance` turns the posterior means of an utterance's segments (one every
            ``segment_hop`` frames) into one vector: "mean", or "mean_std" (their mean and standard
            deviation, 2 * latent_dim).

    Example::

        >>> from modeling import SpeechVAEConfig, SpeechVAEModel
        >>> model = SpeechVAEModel(SpeechVAEConfig(latent_dim=16, speaker_conditioning="decoder"))
    """

    model_type = "speech_vae"

    latent_dim: int = 32
    conv_channels: list[int] = (32, 64, 128, 128)
    pooling: str = "mean"

    def __post_init__(self, **kwargs) -> None:
        self.conv_channels = list(self.conv_channels)
        if self.latent_dim <= 0 or not self.conv_channels:
            raise ValueError("latent_dim must be positive and conv_channels non-empty")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        check_invertible(self.n_mels, self.segment_frames, self.conv_channels)
        super().__post_init__(**kwargs)
