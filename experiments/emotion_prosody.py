"""How emotion changes the timing and the pitch range of speech: a prosody model for conversion, fitted on the
training actors.

In RAVDESS an emotional utterance keeps or shortens the voiced time of the same speaker's neutral utterance of the
same sentence while its unvoiced time (pauses, consonants, voice breaks) grows, by up to about 1.8 times for disgust,
and it widens or narrows its pitch range: surprise almost doubles the spread of its f0 while fear narrows it
(results/README.md, "Conversions stretched in time" and "The pitch range of the target emotion"). A conversion that
keeps every frame and moves the pitch by its mean cannot say so; one made audible by WORLD
(`experiments.synthesis.WorldAnalysis.synthesise`) can stretch its voiced and its unvoiced frames apart and scale its
f0 contour around its median by the target emotion's factors (`EmotionProsody.change`). The voiced share of an
utterance is read from its eGeMAPS functionals (openSMILE's voicing: voiced segments per second times their mean
length), its length from its log-mel frames, its pitch range from the 20th-80th percentile range of its f0 in
semitones; the change itself follows WORLD's voicing and f0 of the recording being converted (its f0 above 0).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from ravdess_dataset import egemaps
from ravdess_dataset.naming import EMOTIONS

from .data import Utterances
from .synthesis import ProsodyChange

SHARE_LIMITS = (0.02, 0.98)  # an utterance counts at least this share of its frames voiced, and unvoiced
RANGE_FLOOR = 0.1  # semitones: the least f0 range an utterance counts (openSMILE gives 0 where it finds no voice)
PITCH_RANGE = "F0semitoneFrom27.5Hz_sma3nz_pctlrange0-2"  # the eGeMAPS functional the pitch range factor is fitted on
FACTORS = ("voiced", "unvoiced", "f0_range")  # the columns of `EmotionProsody.log_factors`


def voiced_unvoiced_frames(functionals: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """(n, 2): the voiced and the unvoiced frames of n utterances of ``frames`` log-mel frames each, split by the
    voiced share of their eGeMAPS ``functionals`` (n, 88), held within `SHARE_LIMITS`."""
    names = egemaps.feature_names()
    share = functionals[:, names.index("VoicedSegmentsPerSec")] * functionals[:, names.index("MeanVoicedSegmentLengthSec")]
    share = np.clip(share, *SHARE_LIMITS)
    return np.stack([share * frames, (1 - share) * frames], 1)


def prosody_measures(functionals: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """(n, 3): what `EmotionProsody` compares, in the order of `FACTORS`: voiced and unvoiced frames
    (`voiced_unvoiced_frames`) and the f0 range in semitones (`PITCH_RANGE`, at least `RANGE_FLOOR`)."""
    pitch_range = np.maximum(functionals[:, egemaps.feature_names().index(PITCH_RANGE)], RANGE_FLOOR)
    return np.column_stack([voiced_unvoiced_frames(functionals, frames), pitch_range])


@dataclass(frozen=True, eq=False)
class EmotionProsody:
    """Per emotion, the mean log ratio of its utterances' voiced time, unvoiced time and f0 range to those of neutral
    utterances by the same speaker of the same sentence: ``log_factors`` (emotions, 3) in the order of `FACTORS`, 0 for
    neutral and for an emotion not seen."""

    log_factors: np.ndarray

    @classmethod
    def fit(cls, functionals: np.ndarray, frames: Sequence[int], actor: np.ndarray, emotion: np.ndarray, rows: np.ndarray,
            statement: Optional[np.ndarray] = None) -> "EmotionProsody":
        """From the utterances of ``rows`` (boolean mask) only: their eGeMAPS ``functionals`` (n, 88) and lengths in
        log-mel ``frames`` (n,) (`prosody_measures`), each emotional utterance against the mean log measures of its
        speaker's neutral utterances of its ``statement`` (every sentence alike when None); one whose speaker has none
        there is left out."""
        logs = np.log(prosody_measures(functionals, np.asarray(frames, dtype=np.float64)))
        sentence = np.zeros(len(emotion), dtype=int) if statement is None else np.asarray(statement)
        log_factors = np.zeros((len(EMOTIONS), len(FACTORS)))
        for e in range(1, len(EMOTIONS)):
            ratios = []
            for i in np.flatnonzero(rows & (emotion == e)):
                neutral = rows & (emotion == 0) & (actor == actor[i]) & (sentence == sentence[i])
                if neutral.any():
                    ratios.append(logs[i] - logs[neutral].mean(0))
            if ratios:
                log_factors[e] = np.mean(ratios, 0)
        return cls(log_factors)

    @classmethod
    def of_utterances(cls, functionals: np.ndarray, utterances: Utterances, rows: np.ndarray) -> "EmotionProsody":
        """`fit` on ``utterances`` (their log-mel lengths, actors, emotions and sentences) and their eGeMAPS
        ``functionals``, from the utterances of ``rows`` only."""
        return cls.fit(functionals, [len(m) for m in utterances.log_mel], utterances.actor, utterances.emotion, rows,
                       utterances.statement)

    def change(self, emotion: int, strength: float = 1.0) -> ProsodyChange:
        """How a neutral utterance converted to ``emotion`` is stretched and its pitch range scaled; ``strength``
        multiplies the log factors (0: no change)."""
        return ProsodyChange(*(float(f) for f in np.exp(strength * self.log_factors[emotion])))

    def as_dict(self) -> dict[str, dict[str, float]]:
        """The factors (strength 1) by emotion name, for metrics.json."""
        return {EMOTIONS[e]: dict(zip(FACTORS, np.exp(self.log_factors[e]).tolist())) for e in range(len(EMOTIONS))}
