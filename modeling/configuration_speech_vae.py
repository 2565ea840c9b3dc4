"""Configuration of `SpeechVAEModel`: a convolutional VAE over fixed-length log-mel segments."""
from .configuration_common import SpeechVAEBaseConfig, check_invertible, option


class SpeechVAEConfig(SpeechVAEBaseConfig):
    """`SpeechVAEModel` options, on top of those of `SpeechVAEBaseConfig` (see each field's help).

    Example::

        >>> from modeling import SpeechVAEConfig, SpeechVAEModel
        >>> model = SpeechVAEModel(SpeechVAEConfig(latent_dim=16, speaker_conditioning="decoder"))
    """

    model_type = "speech_vae"

    latent_dim: int = option(32, "size of the latent z")
    conv_channels: list[int] = option([32, 64, 128, 128], "channels of the stride-2 convolutions; n_mels and segment_frames "
                                                          "must be multiples of 2 ** len(conv_channels)")

    def __post_init__(self, **kwargs) -> None:
        self.conv_channels = list(self.conv_channels)
        if self.latent_dim <= 0 or not self.conv_channels:
            raise ValueError("latent_dim must be positive and conv_channels non-empty")
        check_invertible(self.n_mels, self.segment_frames, self.conv_channels)
        super().__post_init__(**kwargs)
