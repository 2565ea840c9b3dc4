"""Configuration of `SpeechVAEModel`: a convolutional VAE over fixed-length log-mel segments."""
from .configuration_common import SpeechVAEBaseConfig, check_invertible, option

# silence in the prosody channels of ravdess_dataset.prosody (its SILENCE: f0 0 semitones, voicing 0, energy -100 dB),
# what padding frames hold there; written out because a model published with its code carries only `modeling`
PROSODY_SILENCE = (0.0, 0.0, -100.0)


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
    prosody_dim: int = option(0, "prosody channels that follow the n_mels log-mel bands in every input frame: 0 (none) or 3 "
                                 "(the f0, voicing and energy frames of ravdess_dataset.prosody, which training and the "
                                 "feature extractor then append). A 1-D convolutional branch reads them and the decoder "
                                 "reconstructs them, so the latent has to carry pitch")
    prosody_weight: float = option(8.0, "weight of each prosody channel in the reconstruction loss, counted in mel bands "
                                        "(8: the three channels weigh as much as 24 of the 80 bands)")

    def __post_init__(self, **kwargs) -> None:
        self.conv_channels = list(self.conv_channels)
        if self.latent_dim <= 0 or not self.conv_channels:
            raise ValueError("latent_dim must be positive and conv_channels non-empty")
        if self.prosody_dim not in (0, len(PROSODY_SILENCE)):
            raise ValueError(f"prosody_dim must be 0 or {len(PROSODY_SILENCE)} (the channels of ravdess_dataset.prosody), got {self.prosody_dim}")
        if self.prosody_weight < 0:
            raise ValueError(f"prosody_weight must not be negative, got {self.prosody_weight}")
        if self.prosody_dim and self.input_normalization == "speaker":
            raise ValueError("prosody_dim with input_normalization=speaker is not supported: the prosody frames are "
                             "standardised with the dataset's statistics; use input_normalization=dataset")
        check_invertible(self.n_mels, self.segment_frames, self.conv_channels)
        super().__post_init__(**kwargs)

    def padding(self) -> float | list[float]:
        """``pad_value`` in the mel bands, followed by silence in the prosody channels, if any."""
        if not self.prosody_dim:
            return self.pad_value
        return [self.pad_value] * self.n_mels + list(PROSODY_SILENCE)

    def band_weights(self) -> list[float]:
        """1 per mel band, ``prosody_weight`` per prosody channel."""
        return super().band_weights() + [self.prosody_weight] * self.prosody_dim
