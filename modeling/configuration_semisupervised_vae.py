"""Configuration of `SemiSupervisedVAEModel`: Kingma et al. (2014) M2 over log-mel segments."""
from .configuration_common import SpeechVAEBaseConfig, check_invertible, option


class SemiSupervisedVAEConfig(SpeechVAEBaseConfig):
    """`SemiSupervisedVAEModel` options, on top of those of `SpeechVAEBaseConfig` (see each field's help);
    ``num_labels`` (default 8) and ``id2label`` are the emotion classes of y."""

    model_type = "semisupervised_vae"
    uses_labels = True

    latent_dim: int = option(32, "size of the latent z (the style left once the emotion y is known)")
    conv_channels: list[int] = option([32, 64, 128, 128], "channels of the stride-2 convolutions (as in speech_vae)")
    classifier_weight: float = option(50.0, "weight of the labelled cross-entropy -log q(y|x) (Kingma et al.'s alpha)")
    mask_time_count: int = option(0, "SpecAugment on the classifier's training inputs: this many time spans set to the "
                                     "mean (0: off; training only, as dropout)")
    mask_time_length: int = option(0, "widest SpecAugment time span, frames")
    mask_feature_count: int = option(0, "SpecAugment spans over mel bands (0: off)")
    mask_feature_length: int = option(0, "widest SpecAugment band span, bands")
    perturb_speed: float = option(0.0, "before the masks, each training segment of the classifier is stretched in time by a "
                                       "random factor within 1 +- this (0: off)")
    perturb_mel_shift: float = option(0.0, "... and moved along the mel axis by up to this many bands, a pitch shift (0: off)")
    mixup: float = option(0.0, "after the masks, each labelled segment reaches the classifier with this chance mixed "
                               "with another labelled segment of its batch, weight λ ~ U(0, 1) on its own, and is scored "
                               "λ CE(own label) + (1 - λ) CE(the other's): mixup, Zhang et al. 2018 (0: off)")
    conversion_weight: float = option(0.0, "weight of the conversion loss: each labelled training segment's latent is also decoded "
                                           "with another emotion y', drawn at random, and the classifier, held fixed for this term "
                                           "(its weights and running statistics, as at evaluation), should name the result y': "
                                           "-log q(y' | decoded), the domain classification loss of StarGAN-VC (Kameoka et al. "
                                           "2018). It trains the decoder to carry the emotion y, which conversion swaps (0: off)")
    labeled_fraction: float = option(1.0, "share of training utterances whose emotion label is used (train.py draws them "
                                          "with its seed; the config keeps it as a record)")

    def __post_init__(self, **kwargs) -> None:
        self.conv_channels = list(self.conv_channels)
        if self.latent_dim <= 0 or not self.conv_channels:
            raise ValueError("latent_dim must be positive and conv_channels non-empty")
        if min(self.mask_time_count, self.mask_time_length, self.mask_feature_count, self.mask_feature_length) < 0:
            raise ValueError("mask_time_count, mask_time_length, mask_feature_count and mask_feature_length must not be negative")
        if not (0.0 <= self.perturb_speed < 1.0 and self.perturb_mel_shift >= 0.0):
            raise ValueError(f"perturb_speed must be in [0, 1) and perturb_mel_shift not negative, got {self.perturb_speed}, {self.perturb_mel_shift}")
        if not 0.0 <= self.mixup <= 1.0:
            raise ValueError(f"mixup must be in [0, 1], got {self.mixup}")
        if self.conversion_weight < 0:
            raise ValueError(f"conversion_weight must not be negative, got {self.conversion_weight}")
        if not 0.0 <= self.labeled_fraction <= 1.0:
            raise ValueError(f"labeled_fraction must be in [0, 1], got {self.labeled_fraction}")
        check_invertible(self.n_mels, self.segment_frames, self.conv_channels)
        kwargs.setdefault("num_labels", 8)
        super().__post_init__(**kwargs)
        if self.num_labels < 2:
            raise ValueError(f"num_labels must be at least 2, got {self.num_labels}")
