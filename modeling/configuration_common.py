"""Configuration fields every family shares: input shape, preprocessing, KL objective, speaker conditioning.

Each field's meaning is its ``help`` (dataclass field metadata): the one place it is written. ``train.py`` builds its
command-line options from these fields, so ``python train.py --help`` prints the same text. This module and the
families' configuration modules import neither torch nor the models.
"""
from dataclasses import field
from typing import Optional, Sequence

from transformers import PretrainedConfig

OBJECTIVES = ("beta", "capacity")
SPEAKER_CONDITIONING = ("none", "decoder", "both")
INPUT_NORMALIZATIONS = ("dataset", "speaker")
POOLINGS = ("mean", "mean_std")
# options that change what embed_utterance returns and none of the weights: recipes that differ only in these (and in
# where the model goes) train the same weights (an in-training probe logs other scores)
EMBEDDING_OPTIONS = ("pooling", "input_statistics", "input_functionals")
# how many eGeMAPSv02 functionals openSMILE gives an utterance (ravdess_dataset.egemaps.EGEMAPS_DIM), written out
# because a model published with its code carries only `modeling`
EGEMAPS_FUNCTIONALS = 88
# silence in the prosody channels of each source of ravdess_dataset.prosody (pyin's SILENCE: f0 0 semitones, voicing 0,
# energy -100 dB; egemaps: its EGEMAPS_SILENCE), what padding frames hold there in dB inputs; written out because a model
# published with its code carries only `modeling`
PROSODY_SILENCE = (0.0, 0.0, -100.0)
PROSODY_SOURCES = {"pyin": PROSODY_SILENCE, "egemaps": (0.0, 0.0, 0.0, 0.112, 0.076) + (0.0,) * 20}


def option(default, help: str, set_by_train: bool = False):
    """A configuration field with its help text (what ``train.py --help`` prints for it); ``set_by_train``: a field
    that train.py fills from the dataset, not a command-line option."""
    metadata = {"help": help, "set_by_train": set_by_train}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def check_invertible(n_mels: int, frames: int, channels: Sequence[int]) -> None:
    """Raise if ``len(channels)`` stride-2 layers cannot be inverted exactly for this input size."""
    factor = 2 ** len(channels)
    for name, size in (("n_mels", n_mels), ("segment_frames", frames)):
        if size % factor:
            raise ValueError(
                f"{name}={size} cannot be inverted by {len(channels)} stride-2 convolutions "
                f"(conv_channels={list(channels)}): it must be a multiple of {factor}"
            )


def channel_padding(pad_value: float, n_mels: int, prosody_padding: Optional[Sequence[float]]) -> list[float]:
    """The padding of a short segment's frames, one value per channel: ``pad_value`` in the ``n_mels`` bands, then
    ``prosody_padding`` in the prosody channels that follow them, if any."""
    return [float(pad_value)] * n_mels + [float(v) for v in prosody_padding or ()]


class SpeechVAEBaseConfig(PretrainedConfig):
    """Fields shared by `SpeechVAEConfig`, `FHVAEConfig` and `SemiSupervisedVAEConfig` (see each field's help).

    Class attributes (not options): ``uses_labels``, whether the family's training reads emotion labels;
    ``cuts_own_segments``, whether it trains on segments of its own ``segment_frames`` cut from whole utterances
    rather than on the dataset's ``segments`` config; ``reads_prosody``, whether it can read prosody frames
    (``prosody_dim``).
    """

    uses_labels = False
    cuts_own_segments = False
    reads_prosody = True

    n_mels: int = option(80, "mel bands of the input log-mel (default in train.py: the dataset's; it must match it)")
    segment_frames: int = option(128, "frames per segment the model sees (train.py: the dataset's, except for fhvae)")
    segment_hop: int = option(64, "frames between segment starts when an utterance is cut up (embed_utterance)")
    pad_value: float = option(-100.0, "input value of padding in short segments: the dataset's silence floor in dB, or with "
                                      "input_normalization=speaker the lowest standardised training value",
                                      set_by_train=True)
    input_normalization: str = option("dataset", "what the log-mel inputs are: dataset (dB as in the dataset) or speaker (each "
                                                 "utterance standardised per mel band with its speaker's other utterances, by "
                                                 "the caller; outputs are in the same units)")
    feature_params: Optional[dict] = option(None, "the audio and mel parameters of the inputs (the dataset's prepare_info.json), "
                                                  "so that a loaded model can reproduce its preprocessing", set_by_train=True)
    speaker_conditioning: str = option("none", "none; decoder: the decoder also receives the utterance's Resemblyzer embedding, "
                                               "so the latent need not carry the speaker; both: the encoder too")
    speaker_dim: int = option(256, "size of the speaker embedding")
    objective: str = option("beta", "beta (beta * KL, Higgins et al. 2017) or capacity (gamma * |KL - C|, Burgess et al. 2018)")
    beta: float = option(1.0, "KL weight of the beta objective")
    gamma: float = option(100.0, "weight of |KL - C| in the capacity objective")
    capacity_max: float = option(25.0, "final capacity C (nats) of the capacity objective")
    capacity_steps: int = option(10000, "training steps over which C rises linearly from 0 to capacity_max")
    kl_warmup_steps: int = option(0, "steps over which the KL weight rises linearly from 0 (0: no warm-up)")
    free_bits: float = option(0.0, "nats per latent dimension below which the KL is not penalised (0: off)")
    prosody_dim: int = option(0, "prosody channels that follow the n_mels log-mel bands in every input frame: 0 (none), or "
                                 "the channels of prosody_source (3 for pyin, 25 for egemaps), which training and the "
                                 "feature extractor then append (ravdess_dataset.prosody). A 1-D convolutional branch reads "
                                 "them beside each log-mel encoder and the decoder reconstructs them, so the latent has to "
                                 "carry pitch (speech_vae and semisupervised_vae; fhvae does not read them)")
    prosody_source: str = option("pyin", "where the prosody frames come from: pyin (f0, voicing and energy, librosa) or "
                                         "egemaps (the 25 eGeMAPSv02 low-level descriptors of openSMILE, which the egemaps "
                                         "extra installs: research and non-commercial use only)")
    prosody_weight: float = option(8.0, "weight of each prosody channel in the reconstruction loss, counted in mel bands "
                                        "(8: the three pyin channels weigh as much as 24 of the 80 bands)")
    prosody_padding: Optional[list[float]] = option(None, "input value of padding in each prosody channel: silence in dB "
                                                          "inputs (None: the source's), or with input_normalization=speaker "
                                                          "the channel's lowest standardised training value",
                                                    set_by_train=True)
    pooling: str = option("mean", "how embed_utterance pools the vectors of an utterance's segments: mean (weighted by their "
                                  "real frames), or mean_std (followed by their standard deviation, twice the size)")
    input_statistics: bool = option(False, "follow every vector embed_utterance returns with what the model read of the "
                                           "utterance: the statistics over time of each input channel (mel bands, then "
                                           "prosody; modeling.utterance.frame_statistics: mean, std, five percentiles, "
                                           "mean absolute and std of the frame-to-frame change) and, where the model "
                                           "is conditioned on it, the speaker embedding")
    input_functionals: bool = option(False, "follow every vector embed_utterance returns (after the input_statistics, if "
                                            "any) with the 88 eGeMAPSv02 functionals of the utterance (openSMILE, from the "
                                            "same processed waveform as the log-mel; the egemaps extra, research and "
                                            "non-commercial use only), which embed_utterance then takes as `functionals`: "
                                            "the feature extractor of such a model computes them")

    def __post_init__(self, **kwargs) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.input_normalization not in INPUT_NORMALIZATIONS:
            raise ValueError(f"input_normalization must be one of {INPUT_NORMALIZATIONS}, got {self.input_normalization!r}")
        if self.speaker_conditioning not in SPEAKER_CONDITIONING:
            raise ValueError(f"speaker_conditioning must be one of {SPEAKER_CONDITIONING}, got {self.speaker_conditioning!r}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if self.prosody_dim and not self.reads_prosody:
            raise ValueError(f"{self.model_type} does not read prosody frames: prosody_dim must be 0")
        if self.prosody_source not in PROSODY_SOURCES:
            raise ValueError(f"prosody_source must be one of {tuple(PROSODY_SOURCES)}, got {self.prosody_source!r}")
        silence = PROSODY_SOURCES[self.prosody_source]
        if self.prosody_dim not in (0, len(silence)):
            raise ValueError(f"prosody_dim must be 0 or {len(silence)} (the channels of the {self.prosody_source} prosody "
                             f"source), got {self.prosody_dim}")
        self.prosody_padding = [float(v) for v in (silence if self.prosody_padding is None else self.prosody_padding)]
        if len(self.prosody_padding) != len(silence):
            raise ValueError(f"prosody_padding must hold {len(silence)} values, one per channel of the {self.prosody_source} "
                             f"prosody source, got {self.prosody_padding}")
        if self.prosody_weight < 0:
            raise ValueError(f"prosody_weight must not be negative, got {self.prosody_weight}")
        for name in ("n_mels", "segment_frames", "segment_hop", "speaker_dim"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.beta < 0 or self.gamma < 0 or self.free_bits < 0:
            raise ValueError("beta, gamma and free_bits must not be negative")
        super().__post_init__(**kwargs)

    @property
    def input_channels(self) -> int:
        """Channels per input frame: the mel bands, then the prosody channels."""
        return self.n_mels + self.prosody_dim

    def padding(self) -> list[float]:
        """What the frames that pad a short segment hold, one value per channel (`modeling.utterance.segment_utterance`):
        ``pad_value`` in every mel band, followed by ``prosody_padding`` in the prosody channels, if any (`channel_padding`)."""
        return channel_padding(self.pad_value, self.n_mels, self.prosody_padding if self.prosody_dim else None)

    def band_weights(self) -> list[float]:
        """The weight of each input channel in the reconstruction loss: 1 per mel band, ``prosody_weight`` per
        prosody channel."""
        return [1.0] * self.n_mels + [self.prosody_weight] * self.prosody_dim

    @classmethod
    def dataset_fields(cls, dataset_params: dict, pad_value: float, num_sequences: int,
                       prosody_padding: Optional[Sequence[float]] = None) -> dict:
        """What a prepared dataset dictates (``dataset_params``: its ``prepare_info.json`` feature parameters): the
        input size, the feature parameters, the padding values and, for a family that trains on the dataset's
        segments, their length and hop. ``num_sequences``: training utterances (used by families that need it);
        ``prosody_padding``: the prosody channels' padding where the training data says it (else the default)."""
        fields = {"n_mels": dataset_params["mel"]["n_mels"], "feature_params": dataset_params, "pad_value": pad_value}
        if prosody_padding is not None:
            fields["prosody_padding"] = list(prosody_padding)
        if not cls.cuts_own_segments:
            fields.update(segment_frames=dataset_params["segment"]["frames"], segment_hop=dataset_params["segment"]["hop"])
        return fields

    @property
    def decoder_speaker_dim(self) -> int:
        return self.speaker_dim if self.speaker_conditioning != "none" else 0

    @property
    def encoder_speaker_dim(self) -> int:
        return self.speaker_dim if self.speaker_conditioning == "both" else 0
