"""How emotion changes the timing of speech: a duration model for conversion, fitted on the training actors.

In RAVDESS an emotional utterance keeps or shortens the voiced time of the same speaker's neutral utterance of the
same sentence while its unvoiced time (pauses, consonants, voice breaks) grows, by up to about 1.8 times for disgust
(results/README.md, "Conversions stretched in time"). A conversion that keeps every frame cannot say so; one made
audible by WORLD (`experiments.synthesis.WorldAnalysis.synthesise`) can stretch its voiced and its unvoiced frames
apart by the target emotion's factors (`EmotionTiming.stretch`). The voiced share of an utterance is read from its
eGeMAPS functionals (openSMILE's voicing: voiced segments per second times their mean length), its length from its
log-mel frames; the stretch itself follows WORLD's voicing of the recording being converted (its f0 above 0).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from ravdess_dataset import egemaps
from ravdess_dataset.naming import EMOTIONS

SHARE_LIMITS = (0.02, 0.98)  # an utterance counts at least this share of its frames voiced, and unvoiced


def voiced_unvoiced_frames(functionals: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """(n, 2): the voiced and the unvoiced frames of n utterances of ``frames`` log-mel frames each, split by the
    voiced share of their eGeMAPS ``functionals`` (n, 88), held within `SHARE_LIMITS`."""
    names = egemaps.feature_names()
    share = functionals[:, names.index("VoicedSegmentsPerSec")] * functionals[:, names.index("MeanVoicedSegmentLengthSec")]
    share = np.clip(share, *SHARE_LIMITS)
    return np.stack([share * frames, (1 - share) * frames], 1)


@dataclass(frozen=True, eq=False)
class EmotionTiming:
    """Per emotion, the mean log ratio of its utterances' voiced and unvoiced time to those of neutral utterances by
    the same speaker of the same sentence: ``log_factors`` (emotions, 2), 0 for neutral and for an emotion not seen."""

    log_factors: np.ndarray

    @classmethod
    def fit(cls, functionals: np.ndarray, frames: Sequence[int], actor: np.ndarray, emotion: np.ndarray, rows: np.ndarray,
            statement: Optional[np.ndarray] = None) -> "EmotionTiming":
        """From the utterances of ``rows`` (boolean mask) only: their eGeMAPS ``functionals`` (n, 88) and lengths in
        log-mel ``frames`` (n,) (`voiced_unvoiced_frames`), each emotional utterance against the mean log voiced and
        unvoiced frames of its speaker's neutral utterances of its ``statement`` (every sentence alike when None); one
        whose speaker has none there is left out."""
        logs = np.log(voiced_unvoiced_frames(functionals, np.asarray(frames, dtype=np.float64)))
        sentence = np.zeros(len(emotion), dtype=int) if statement is None else np.asarray(statement)
        log_factors = np.zeros((len(EMOTIONS), 2))
        for e in range(1, len(EMOTIONS)):
            ratios = []
            for i in np.flatnonzero(rows & (emotion == e)):
                neutral = rows & (emotion == 0) & (actor == actor[i]) & (sentence == sentence[i])
                if neutral.any():
                    ratios.append(logs[i] - logs[neutral].mean(0))
            if ratios:
                log_factors[e] = np.mean(ratios, 0)
        return cls(log_factors)

    def stretch(self, emotion: int, strength: float = 1.0) -> tuple[float, float]:
        """The (voiced, unvoiced) stretch of a neutral utterance converted to ``emotion``; ``strength`` multiplies the
        log factors as it multiplies the emotion's latent shift."""
        voiced, unvoiced = np.exp(strength * self.log_factors[emotion])
        return float(voiced), float(unvoiced)

    def as_dict(self) -> dict[str, dict[str, float]]:
        """The factors by emotion name, for metrics.json."""
        return {EMOTIONS[e]: dict(zip(("voiced", "unvoiced"), self.stretch(e))) for e in range(len(EMOTIONS))}
