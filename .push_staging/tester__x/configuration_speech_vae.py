"""Configuration of `SpeechVAEModel`: a convolutional VAE over fixed-length log-mel segments."""
from __future__ import annotations

from .configuration_common import SpeechVAEBaseConfig
from .layers import check_invertible


class SpeechVAEConfig(SpeechVAEBaseConfig):
    """`SpeechVAEModel` options, on top of those of `SpeechVAEBaseConfig`.

    Args:
        latent_dim: size of the latent z.
        conv_channels: channels of the stride-2 convolutions; ``n_mels`` and ``segment_frames``
            must be multiples of 2 ** len(conv_channels).

    Example::

        >>> from modeling import SpeechVAEConfig, SpeechVAEModel
        >>> model = SpeechVAEModel(SpeechVAEConfig(latent_dim=16, speaker_conditioning="decoder"))
    """

    model_type = "speech_vae"

    latent_dim: int = 32
    conv_channels: list[int] = (32, 64, 128, 128)

    def __post_init__(self, **kwargs) -> None:
        self.conv_channels = list(self.conv_channels)
        if self.latent_dim <= 0 or not self.conv_channels:
            raise ValueError("latent_dim must be positive and conv_channels non-empty")
        check_invertible(self.n_mels, self.segment_frames, self.conv_channels)
        super().__post_init__(**kwargs)
