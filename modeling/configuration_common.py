"""Configuration fields every family shares: input shape, preprocessing, KL objective, speaker conditioning."""
from __future__ import annotations

from typing import Optional

from transformers import PretrainedConfig

OBJECTIVES = ("beta", "capacity")
SPEAKER_CONDITIONING = ("none", "decoder", "both")
INPUT_NORMALIZATIONS = ("dataset", "speaker")


class SpeechVAEBaseConfig(PretrainedConfig):
    """Fields shared by `SpeechVAEConfig`, `FHVAEConfig` and `SemiSupervisedVAEConfig`.

    Args:
        n_mels: mel bands of the input log-mel.
        segment_frames: frames per segment the model sees.
        segment_hop: frames between segment starts when an utterance is cut up (`embed_utterance`).
        pad_value: input value of padding in short segments: the dataset's silence floor in dB, or with
            ``input_normalization="speaker"`` the lowest standardised training value.
        input_normalization: what the model's log-mel inputs are. "dataset": dB as in the dataset.
            "speaker": each utterance standardised per mel band with its speaker's other utterances
            (`modeling.utterance.SpeakerStatistics`); the caller standardises, the model's outputs
            are in the same units (`SpeakerStatistics.restore` gives dB back).
        feature_params: the audio and mel parameters the inputs were computed with (the dataset's
            ``prepare_info.json``), so that a loaded model can reproduce its preprocessing.
        speaker_conditioning: "none"; "decoder": the decoder also receives the utterance's
            Resemblyzer embedding, so the latent need not carry the speaker; "both": the encoder too.
        speaker_dim: size of that embedding.
        objective: "beta" (beta * KL, Higgins et al. 2017) or "capacity" (gamma * |KL - C|,
            Burgess et al. 2018).
        beta: KL weight of the "beta" objective.
        gamma, capacity_max, capacity_steps: the "capacity" objective; C (nats) rises linearly
            from 0 to ``capacity_max`` over ``capacity_steps`` training steps.
        kl_warmup_steps: steps over which the KL weight rises linearly from 0 (0: no warm-up).
        free_bits: nats per latent dimension below which the KL is not penalised (0: off).
    """

    n_mels: int = 80
    segment_frames: int = 128
    segment_hop: int = 64
    pad_value: float = -100.0
    input_normalization: str = "dataset"
    feature_params: Optional[dict] = None
    speaker_conditioning: str = "none"
    speaker_dim: int = 256
    objective: str = "beta"
    beta: float = 1.0
    gamma: float = 100.0
    capacity_max: float = 25.0
    capacity_steps: int = 10000
    kl_warmup_steps: int = 0
    free_bits: float = 0.0

    def __post_init__(self, **kwargs) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.input_normalization not in INPUT_NORMALIZATIONS:
            raise ValueError(f"input_normalization must be one of {INPUT_NORMALIZATIONS}, got {self.input_normalization!r}")
        if self.speaker_conditioning not in SPEAKER_CONDITIONING:
            raise ValueError(f"speaker_conditioning must be one of {SPEAKER_CONDITIONING}, got {self.speaker_conditioning!r}")
        for name in ("n_mels", "segment_frames", "segment_hop", "speaker_dim"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.beta < 0 or self.gamma < 0 or self.free_bits < 0:
            raise ValueError("beta, gamma and free_bits must not be negative")
        super().__post_init__(**kwargs)

    @property
    def decoder_speaker_dim(self) -> int:
        return self.speaker_dim if self.speaker_conditioning != "none" else 0

    @property
    def encoder_speaker_dim(self) -> int:
        return self.speaker_dim if self.speaker_conditioning == "both" else 0
