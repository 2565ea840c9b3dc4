"""From the prepared dataset to the tensors a model family trains on."""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from modeling.configuration_common import channel_padding
from modeling.utterance import segment_utterance
from ravdess_dataset import egemaps
from ravdess_dataset.derived import dataset_prosody
from ravdess_dataset.export_h5 import INFO_FILE
from ravdess_dataset.prosody import MissingOpensmile
from ravdess_dataset.speaker_statistics import SpeakerStatistics, leave_one_out
from ravdess_dataset.splits import load_all, select_actors

from .errors import CommandError

PREPARE_HINT = "python -m ravdess_dataset prepare /path/to/Audio_Speech_Actors_01-24 --output-dir {dir}"


class DatasetNotPrepared(CommandError):
    """The dataset folder lacks what training needs; the message says how to prepare it."""


def dataset_params(dataset_dir: Path, configs: Sequence[str]) -> dict:
    """The feature parameters of a prepared dataset (``prepare_info.json``), checking ``configs`` exist."""
    info_path = dataset_dir / INFO_FILE
    if not info_path.is_file():
        raise DatasetNotPrepared(f"{dataset_dir} is not a prepared dataset (no {INFO_FILE}); run\n  "
                                 + PREPARE_HINT.format(dir=dataset_dir))
    info = json.loads(info_path.read_text())
    missing = [c for c in configs if c not in info["configs"]]
    if missing:
        raise DatasetNotPrepared(f"{dataset_dir} lacks the configs {missing}; run\n  "
                                 + PREPARE_HINT.format(dir=dataset_dir) + " --configs " + " ".join(sorted({*configs, *info["configs"]})))
    return info["feature_params"]


@dataclass
class Utterances:
    """Whole utterances for probes: log-mels (T_i, n_mels), or as a model sees them (`model_view`: prosody channels
    may follow, speaker-standardised, and the eGeMAPS functionals a model with ``input_functionals`` is handed),
    speaker embeddings, labels, ids."""

    log_mel: list[np.ndarray]
    embedding: np.ndarray
    emotion: np.ndarray
    actor: np.ndarray  # 1..24
    gender: np.ndarray
    repetition: np.ndarray
    file: list[str]
    statistics: Optional[list[SpeakerStatistics]] = None  # set when log_mel is speaker-standardised
    statement: Optional[np.ndarray] = None  # 0: "Kids are talking by the door", 1: "Dogs are sitting by the door"
    mel_bands: Optional[int] = None  # set when prosody channels follow the log-mel bands in log_mel
    functionals: Optional[np.ndarray] = None  # (n, 88) eGeMAPS functionals, set by model_view for input_functionals

    @classmethod
    def from_dataset(cls, dataset) -> "Utterances":
        d = dataset.with_format("numpy")[:]
        return cls(list(d["log_mel"]), np.stack(d["embedding"]), d["emotion"], d["actor"] + 1, d["gender"], d["repetition"],
                   list(d["file"]), statement=d["statement"])

    def select(self, rows: np.ndarray) -> "Utterances":
        """The utterances where the boolean mask ``rows`` is true, in their order (in dB: take `model_view` after)."""
        if self.statistics is not None or self.mel_bands is not None or self.functionals is not None:
            raise ValueError("select the utterances before taking a model_view")
        i = np.flatnonzero(rows)
        return Utterances([self.log_mel[k] for k in i], self.embedding[i], self.emotion[i], self.actor[i], self.gender[i],
                          self.repetition[i], [self.file[k] for k in i], statement=None if self.statement is None else self.statement[i])

    def model_view(self, config, dataset_dir: Optional[Path] = None) -> "Utterances":
        """The utterances as a model of ``config`` sees them: a model with ``prosody_dim`` reads the prosody frames of
        its ``prosody_source`` in ``dataset_dir`` (`ravdess_dataset.derived.dataset_prosody`) after the log-mel bands of every frame; with
        ``input_normalization`` "speaker" each utterance (prosody channels included) is then standardised with its
        actor's other utterances, with "dataset" it stays in dB. A model with ``input_functionals`` is handed the
        utterances' eGeMAPS functionals (`ravdess_dataset.egemaps.dataset_functionals`)."""
        view = self
        if config.input_functionals:
            if dataset_dir is None:
                raise ValueError("this model's embedding ends with eGeMAPS functionals: pass the prepared dataset they are computed from")
            functionals, reason = egemaps.dataset_functionals(dataset_dir, self.file)
            if functionals is None:
                raise CommandError(f"this model's embedding ends with eGeMAPS functionals: {reason}")
            view = replace(view, functionals=functionals)
        if config.prosody_dim:
            if dataset_dir is None:
                raise ValueError("this model reads prosody frames: pass the prepared dataset they are computed from")
            try:
                prosody = dataset_prosody(dataset_dir, self.file, config.prosody_source)
            except (ValueError, MissingOpensmile) as err:  # no audio config; the egemaps source without opensmile
                raise CommandError(f"this model reads prosody frames: {err}") from None
            differ = [(f, len(m), len(p)) for f, m, p in zip(self.file, self.log_mel, prosody) if len(m) != len(p)]
            if differ:
                raise CommandError(f"{dataset_dir}: {len(differ)} utterances have prosody frames of another length than "
                                   f"their log-mel (e.g. {differ[0][0]}: {differ[0][2]} against {differ[0][1]})")
            view = replace(view, log_mel=[np.concatenate([m, p], 1) for m, p in zip(self.log_mel, prosody)],
                           mel_bands=self.log_mel[0].shape[1] if self.log_mel else None)
        if config.input_normalization == "speaker":
            statistics = leave_one_out(view.log_mel, view.actor.tolist())
            view = replace(view, log_mel=[s.standardise(m) for s, m in zip(statistics, view.log_mel)], statistics=statistics)
        return view

    def restore(self, i: int, frames: np.ndarray) -> np.ndarray:
        """Frames in this view's units (a model's output for utterance ``i``) back in the dataset's: the log-mel in dB
        and the prosody channels, where the view has them, in their own units."""
        return frames if self.statistics is None else self.statistics[i].restore(frames)

    def to_db(self, i: int, log_mel: np.ndarray) -> np.ndarray:
        """A log-mel in this view's units (a model's output for utterance ``i``, prosody channels included where the
        view has them) back in dB, log-mel bands only."""
        log_mel = self.restore(i, log_mel)
        return log_mel if self.mel_bands is None else log_mel[:, : self.mel_bands]


@dataclass
class TrainingData:
    """Training and evaluation rows (dicts of tensors) plus the utterances the probe embeds."""

    train: dict[str, torch.Tensor]
    eval: dict[str, torch.Tensor]
    probe_train: Utterances
    probe_eval: Utterances
    pad_value: float  # the input value of padding in the mel bands: the config's, or the lowest standardised training value
    prosody_padding: Optional[list[float]] = None  # in the prosody channels, where the model reads them (else None)

    def columns(self) -> list[str]:
        return list(self.train)

    def feature_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-band mean and std over the real (unpadded) training frames."""
        x, lengths = self.train["log_mel"], self.train["length"]
        mask = (torch.arange(x.shape[1])[None, :] < lengths[:, None]).reshape(-1)
        frames = x.reshape(-1, x.shape[2])[mask]
        return frames.mean(0), frames.std(0)


def _segment_rows(utterances: Utterances, frames: int, hop: int, pad_value: float | Sequence[float]) -> dict[str, torch.Tensor]:
    """FHVAE rows: short segments cut from every utterance, with the utterance's index as sequence."""
    segs, lengths, index = [], [], []
    for i, log_mel in enumerate(utterances.log_mel):
        s, n = segment_utterance(log_mel, frames, hop, pad_value)
        segs.append(s)
        lengths.append(n)
        index.append(torch.full((len(s),), i))
    index = torch.cat(index)
    return {"log_mel": torch.cat(segs), "length": torch.cat(lengths), "sequence_index": index,
            "embedding": torch.as_tensor(utterances.embedding)[index], "emotion": torch.as_tensor(utterances.emotion)[index]}


def _labels(train: dict[str, torch.Tensor], utterance_ids: np.ndarray, fraction: Optional[float], seed: int) -> torch.Tensor:
    """The emotion of the rows of a seeded random share of the training utterances; -1 marks the others."""
    unique = np.unique(utterance_ids)
    chosen = np.random.default_rng(seed).permutation(len(unique))[: round((1.0 if fraction is None else fraction) * len(unique))]
    labeled = torch.as_tensor(np.isin(utterance_ids, unique[chosen]))
    return torch.where(labeled, train["emotion"], torch.full_like(train["emotion"], -1))


def _dataset_rows(dataset) -> dict[str, torch.Tensor]:
    columns = ["log_mel", "length", "embedding", "emotion"]
    return dataset.with_format("torch", columns=columns)[:]


def load_training_data(dataset_dir: Path, config, train_actors: Sequence[int], eval_actors: Sequence[int], seed: int) -> TrainingData:
    """The rows a model of ``config`` trains on, of ``train_actors`` (training) and ``eval_actors`` (evaluation);
    other actors unused. Families that cut their own segments (``config.cuts_own_segments``) get segments of
    ``config.segment_frames`` every ``config.segment_hop`` frames with the index of their utterance; the others the
    dataset's ``segments``. Families that use labels (``config.uses_labels``) get a ``label`` column: the emotion of a
    seeded ``config.labeled_fraction`` of the training utterances, -1 elsewhere.

    With ``config.input_normalization == "speaker"`` every utterance is standardised with its actor's other
    utterances first and the segments are cut from those, as ``embed_utterance`` cuts (the padding value then is
    the lowest standardised training value of the mel bands, `TrainingData.pad_value`); so are they for a model that
    reads prosody frames (`Utterances.model_view`), whose prosody channels are padded with silence in dB inputs, or
    with each channel's lowest standardised training value (`TrainingData.prosody_padding`)."""
    params = dataset_params(dataset_dir, ["mel", "segments"])
    mel = load_all("mel", dataset_dir)
    probe_train = Utterances.from_dataset(select_actors(mel, train_actors)).model_view(config, dataset_dir)
    probe_eval = Utterances.from_dataset(select_actors(mel, eval_actors)).model_view(config, dataset_dir)
    pad, bands = config.pad_value, config.n_mels
    prosody_pad = list(config.prosody_padding) if config.prosody_dim else None  # silence, in dB inputs
    if config.input_normalization == "speaker":
        pad = float(min(m[:, :bands].min() for m in probe_train.log_mel))
        if config.prosody_dim:
            prosody_pad = np.min([m[:, bands:].min(0) for m in probe_train.log_mel], 0).tolist()
    if config.cuts_own_segments or probe_train.statistics is not None or probe_train.mel_bands is not None:
        frames, hop = ((config.segment_frames, config.segment_hop) if config.cuts_own_segments
                       else (params["segment"]["frames"], params["segment"]["hop"]))  # the dataset's, as in "dataset" mode
        padding = channel_padding(pad, bands, prosody_pad)
        train, evaluation = _segment_rows(probe_train, frames, hop, padding), _segment_rows(probe_eval, frames, hop, padding)
        utterance_ids = train["sequence_index"].numpy()
    else:
        segments = load_all("segments", dataset_dir)
        seg_train, seg_eval = select_actors(segments, train_actors), select_actors(segments, eval_actors)
        train, evaluation = _dataset_rows(seg_train), _dataset_rows(seg_eval)
        utterance_ids = np.asarray(seg_train.with_format(None, columns=["utterance_id"])[:]["utterance_id"])
    if config.uses_labels:
        train["label"] = _labels(train, utterance_ids, config.labeled_fraction, seed)
        evaluation["label"] = evaluation["emotion"]
    return TrainingData(train, evaluation, probe_train, probe_eval, pad, prosody_pad)
