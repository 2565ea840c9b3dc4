"""Configuration of `SemiSupervisedVAEModel`: Kingma et al. (2014) M2 over log-mel segments."""
from __future__ import annotations

from .configuration_common import SpeechVAEBaseConfig
from .layers import check_invertible


class SemiSupervisedVAEConfig(SpeechVAEBaseConfig):
    """`SemiSupervisedVAEModel` options, on top of those of `SpeechVAEBaseConfig`.

    Args:
        latent_dim: size of the latent z (the style left once the emotion y is known).
        conv_channels: channels of the stride-2 convolutions (as in `SpeechVAEConfig`).
        num_labels: emotion classes of y.
        classifier_weight: weight of the labelled cross-entropy -log q(y|x) (Kingma et al.'s alpha).
        mask_time_count, mask_time_length: SpecAugment on the classifier's training inputs: this many spans
            of up to ``mask_time_length`` frames each set to the mean (0: off). Training only, as dropout.
        mask_feature_count, mask_feature_length: the same over mel bands.
        perturb_speed: before the masks, each training segment of the classifier is stretched in time by a
            random factor within 1 +- ``perturb_speed`` (0: off) ...
        perturb_mel_shift: ... and moved along the mel axis by up to this many bands, a pitch shift (0: off).
        labeled_fraction: fraction of training utterances whose label is used; a record of how the
            model was trained (train.py draws those utterances with its seed).
        id2label: class names.
    """

    model_type = "semisupervised_vae"

    latent_dim: int = 32
    conv_channels: list[int] = (32, 64, 128, 128)
    classifier_weight: float = 50.0
    mask_time_count: int = 0
    mask_time_length: int = 0
    mask_feature_count: int = 0
    mask_feature_length: int = 0
    perturb_speed: float = 0.0
    perturb_mel_shift: float = 0.0
    labeled_fraction: float = 1.0

    def __post_init__(self, **kwargs) -> None:
        self.conv_channels = list(self.conv_channels)
        if self.latent_dim <= 0 or not self.conv_channels:
            raise ValueError("latent_dim must be positive and conv_channels non-empty")
        if min(self.mask_time_count, self.mask_time_length, self.mask_feature_count, self.mask_feature_length) < 0:
            raise ValueError("mask_time_count, mask_time_length, mask_feature_count and mask_feature_length must not be negative")
        if not (0.0 <= self.perturb_speed < 1.0 and self.perturb_mel_shift >= 0.0):
            raise ValueError(f"perturb_speed must be in [0, 1) and perturb_mel_shift not negative, got {self.perturb_speed}, {self.perturb_mel_shift}")
        if not 0.0 <= self.labeled_fraction <= 1.0:
            raise ValueError(f"labeled_fraction must be in [0, 1], got {self.labeled_fraction}")
        check_invertible(self.n_mels, self.segment_frames, self.conv_channels)
        kwargs.setdefault("num_labels", 8)
        super().__post_init__(**kwargs)
        if self.num_labels < 2:
            raise ValueError(f"num_labels must be at least 2, got {self.num_labels}")
