"""The prosody model of conversion (`experiments.emotion_prosody`): how each emotion stretches the voiced and unvoiced
time of a speaker's neutral speech and scales its pitch range, fitted on chosen utterances only."""
from dataclasses import astuple

import numpy as np
import pytest

from experiments.emotion_prosody import PITCH_RANGE, RANGE_FLOOR, EmotionProsody, voiced_unvoiced_frames
from experiments.synthesis import ProsodyChange
from ravdess_dataset import egemaps
from ravdess_dataset.naming import EMOTIONS

pytestmark = pytest.mark.skipif(egemaps.missing() is not None, reason="the egemaps extra is not installed")
DISGUST, SAD = EMOTIONS.index("disgust"), EMOTIONS.index("sad")


def functionals_with_share(share: np.ndarray, pitch_range: float | np.ndarray = 4.0) -> np.ndarray:
    """(n, 88) functionals whose voiced share is ``share`` (4 voiced segments per second of share / 4 s each) and
    whose f0 range is ``pitch_range`` semitones."""
    names = egemaps.feature_names()
    x = np.zeros((len(share), len(names)))
    x[:, names.index("VoicedSegmentsPerSec")] = 4.0
    x[:, names.index("MeanVoicedSegmentLengthSec")] = np.asarray(share) / 4.0
    x[:, names.index(PITCH_RANGE)] = pitch_range
    return x


def test_voiced_and_unvoiced_frames_split_an_utterance_by_its_voiced_share():
    frames = voiced_unvoiced_frames(functionals_with_share(np.array([0.6, 0.0, 1.5])), np.array([100.0, 100.0, 50.0]))
    np.testing.assert_allclose(frames, [[60, 40], [2, 98], [49, 1]])  # a share held within 2 % and 98 %


def test_emotion_prosody_compares_each_emotion_with_the_same_speakers_neutral_sentence_within_the_rows():
    # actor 1: neutral sentence 0 of 100 frames, 60 % voiced, f0 ranges 2 and 8 semitones (two takes), disgust of 160
    # frames, 40 % voiced, range 8; actor 2: neutral sentence 0 of 100 frames, 50 % voiced, range 4, disgust 150 frames,
    # 50 % voiced, range 3; sad of sentence 1, which actor 2 has no neutral of (left out); actor 3 is outside the rows,
    # with a disgust 10 times as long.
    actor = np.array([1, 1, 1, 2, 2, 2, 3, 3])
    emotion = np.array([0, 0, DISGUST, 0, DISGUST, SAD, 0, DISGUST])
    statement = np.array([0, 0, 0, 0, 0, 1, 0, 0])
    frames = np.array([100, 100, 160, 100, 150, 300, 100, 1000])
    share = np.array([0.6, 0.6, 0.4, 0.5, 0.5, 0.5, 0.5, 0.5])
    pitch_range = np.array([2.0, 8.0, 8.0, 4.0, 3.0, 4.0, 4.0, 40.0])
    rows = actor < 3
    functionals = functionals_with_share(share, pitch_range)
    prosody = EmotionProsody.fit(functionals, frames, actor, emotion, rows, statement)
    voiced = np.mean([np.log(64 / 60), np.log(75 / 50)])
    unvoiced = np.mean([np.log(96 / 40), np.log(75 / 50)])
    f0_range = np.mean([np.log(8.0) - np.mean(np.log([2.0, 8.0])), np.log(3 / 4)])  # against the mean log of the takes
    np.testing.assert_allclose(prosody.log_factors[DISGUST], [voiced, unvoiced, f0_range])
    np.testing.assert_array_equal(prosody.log_factors[SAD], [0.0, 0.0, 0.0])  # no neutral of its sentence by its speaker
    np.testing.assert_array_equal(prosody.log_factors[0], [0.0, 0.0, 0.0])
    assert astuple(prosody.change(DISGUST)) == pytest.approx(np.exp([voiced, unvoiced, f0_range]))
    assert astuple(prosody.change(DISGUST, 2.0)) == pytest.approx(np.exp(2 * np.array([voiced, unvoiced, f0_range])))
    assert prosody.change(DISGUST, 0.0) == ProsodyChange()
    assert prosody.as_dict()["disgust"] == pytest.approx({"voiced": np.exp(voiced), "unvoiced": np.exp(unvoiced), "f0_range": np.exp(f0_range)})
    assert set(prosody.as_dict()) == set(EMOTIONS)
    assert prosody.as_dict()["neutral"] == {"voiced": 1.0, "unvoiced": 1.0, "f0_range": 1.0}
    every_sentence = EmotionProsody.fit(functionals, frames, actor, emotion, rows)
    assert every_sentence.log_factors[SAD, 0] == pytest.approx(np.log(150 / 50))  # against actor 2's neutral of sentence 0


def test_an_utterance_without_a_found_pitch_counts_the_least_range():
    # openSMILE gives a range of 0 where it finds no voice: counted as RANGE_FLOOR, so the factor stays finite
    actor, emotion = np.array([1, 1]), np.array([0, DISGUST])
    functionals = functionals_with_share(np.array([0.5, 0.5]), np.array([0.0, 2.0]))
    prosody = EmotionProsody.fit(functionals, np.array([100, 100]), actor, emotion, np.ones(2, dtype=bool))
    assert prosody.log_factors[DISGUST, 2] == pytest.approx(np.log(2.0 / RANGE_FLOOR))
