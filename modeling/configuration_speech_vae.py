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
    prosody_dim: int = option(0, "prosody channels that follow the n_mels log-mel bands in every input frame (3: the f0, "
                                 "voicing and energy frames of ravdess_dataset.prosody, which training and the feature "
                                 "extractor then append; 0: none). A 1-D convolutional branch reads them and the decoder "
                                 "reconstructs them, so the latent has to carry pitch")
    prosody_weight: float = option(8.0, "weight of each prosody channel in the reconstruction loss, counted in mel bands "
                                        "(8: the three channels weigh as much as 24 of the 80 bands)")

    def __post_init__(self, **kwargs) -> None:
        self.conv_channels = list(self.conv_channels)
        if self.latent_dim <= 0 or not self.conv_channels:
            raise ValueError("latent_dim must be positive and conv_channels non-empty")
        if self.prosody_dim < 0 or self.prosody_weight < 0:
            raise ValueError(f"prosody_dim and prosody_weight must not be negative, got {self.prosody_dim}, {self.prosody_weight}")
        if self.prosody_dim and self.input_normalization == "speaker":
            raise ValueError("prosody_dim with input_normalization=speaker is not supported: the prosody frames are "
                             "standardised with the dataset's statistics; use input_normalization=dataset")
        check_invertible(self.n_mels, self.segment_frames, self.conv_channels)
        super().__post_init__(**kwargs)
