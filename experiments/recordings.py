"""Your own recordings (``evaluate.py --audio ... --metadata recordings.csv``): who speaks in each file and, where
known, which emotion; the baselines of those files through the project's front end; a leave-one-speaker-out probe.

The metadata is a CSV file with a header and the columns ``file,speaker[,emotion]``: ``file`` relative to the CSV's
folder (or absolute), ``speaker`` any name, ``emotion`` one of RAVDESS's names (neutral, calm, happy, sad, angry,
fearful, disgust, surprised).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ravdess_dataset import egemaps
from ravdess_dataset.audio import AudioConfig, read_audio
from ravdess_dataset.feature_extraction import voice_encoder
from ravdess_dataset.features import MelConfig
from ravdess_dataset.front_end import analyse_waveform
from ravdess_dataset.naming import EMOTIONS

from .probes import fit_probe, prediction_scores
from .representation import log_mel_statistics


@dataclass(frozen=True)
class Recording:
    path: Path
    speaker: str
    emotion: Optional[int]  # index into EMOTIONS; None when the metadata has no emotion column


def read_metadata(path: Path) -> list[Recording]:
    """The recordings a metadata CSV lists; a missing column, file or unknown emotion is a `ValueError` naming the line."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
            columns = set(rows[0]) if rows else set()
    except OSError as err:
        raise ValueError(f"{path}: cannot read the metadata ({err.strerror or err})") from None
    if not {"file", "speaker"} <= columns:
        raise ValueError(f"{path}: a metadata CSV needs a header with the columns file,speaker[,emotion]; found {sorted(columns) or 'no rows'}")
    recordings = []
    for line, row in enumerate(rows, start=2):
        where = f"{path}, line {line}"
        audio = Path(row["file"].strip())
        audio = audio if audio.is_absolute() else path.parent / audio
        if not audio.is_file():
            raise ValueError(f"{where}: {audio} does not exist")
        if not (row["speaker"] or "").strip():
            raise ValueError(f"{where}: no speaker")
        emotion = None
        if "emotion" in columns:
            name = (row["emotion"] or "").strip().lower()
            if name not in EMOTIONS:
                raise ValueError(f"{where}: emotion {row['emotion']!r} is not one of {', '.join(EMOTIONS)}")
            emotion = EMOTIONS.index(name)
        recordings.append(Recording(audio, row["speaker"].strip(), emotion))
    return recordings


def recording_baselines(paths: Sequence[Path], audio: AudioConfig, mel: MelConfig) -> tuple[dict[str, np.ndarray], Optional[str]]:
    """The baselines of `experiments.representation.baselines` for arbitrary files, through the same front end as
    the dataset (resampling, loudness, trimming): log-mel statistics, Resemblyzer and, with the `egemaps` extra,
    eGeMAPS alone and beside Resemblyzer. Returns them and why eGeMAPS is absent (or None)."""
    reason = egemaps.missing()
    log_mels, windows, functionals = [], [], []
    for path in paths:
        wav, rate = read_audio(path)
        processed, log_mel, encoder_windows = analyse_waveform(wav, rate, audio, mel, str(path))
        log_mels.append(log_mel)
        windows.append(encoder_windows)
        if reason is None:
            functionals.append(egemaps.egemaps_functionals(processed, audio.sample_rate))
    resemblyzer = np.stack([embedding for embedding, _ in voice_encoder().embed_utterances(windows)])
    found = {"log_mel_mean_std": log_mel_statistics(log_mels), "resemblyzer": resemblyzer}
    if reason is None:
        found["egemaps"] = np.stack(functionals)
        found["egemaps_resemblyzer"] = np.hstack([found["egemaps"], resemblyzer])
    return found, reason


def leave_one_speaker_out(x: np.ndarray, emotion: np.ndarray, speakers: np.ndarray, seed: int = 0) -> Optional[dict]:
    """The emotion probe fitted on every other speaker and tested on each speaker in turn; scores over all the
    predictions, and the mean UAR per speaker. None when a speaker's complement holds fewer than two emotions."""
    predicted = np.empty_like(emotion)
    per_speaker = []
    for speaker in np.unique(speakers):
        test = speakers == speaker
        if len(np.unique(emotion[~test])) < 2:
            return None
        predicted[test] = fit_probe(x[~test], emotion[~test], seed).predict(x[test])
        per_speaker.append(prediction_scores(emotion[test], predicted[test])["uar"])
    return {**prediction_scores(emotion, predicted), "speakers": len(per_speaker),
            "uar_per_speaker": {"mean": float(np.mean(per_speaker)), "sd": float(np.std(per_speaker))}}
