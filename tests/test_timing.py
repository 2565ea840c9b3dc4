"""The duration model of conversion (`experiments.timing`): how each emotion stretches the voiced and unvoiced time
of a speaker's neutral speech, fitted on chosen utterances only."""
import numpy as np
import pytest

from experiments.timing import EmotionTiming, voiced_unvoiced_frames
from ravdess_dataset import egemaps
from ravdess_dataset.naming import EMOTIONS

pytestmark = pytest.mark.skipif(egemaps.missing() is not None, reason="the egemaps extra is not installed")
DISGUST, SAD = EMOTIONS.index("disgust"), EMOTIONS.index("sad")


def functionals_with_share(share: np.ndarray) -> np.ndarray:
    """(n, 88) functionals whose voiced share is ``share``: 4 voiced segments per second of share / 4 s each."""
    names = egemaps.feature_names()
    x = np.zeros((len(share), len(names)))
    x[:, names.index("VoicedSegmentsPerSec")] = 4.0
    x[:, names.index("MeanVoicedSegmentLengthSec")] = np.asarray(share) / 4.0
    return x


def test_voiced_and_unvoiced_frames_split_an_utterance_by_its_voiced_share():
    frames = voiced_unvoiced_frames(functionals_with_share(np.array([0.6, 0.0, 1.5])), np.array([100.0, 100.0, 50.0]))
    np.testing.assert_allclose(frames, [[60, 40], [2, 98], [49, 1]])  # a share held within 2 % and 98 %


def test_emotion_timing_compares_each_emotion_with_the_same_speakers_neutral_sentence_within_the_rows():
    # actor 1: neutral sentence 0 of 100 frames, 60 % voiced (two takes), disgust of 160 frames, 40 % voiced;
    # actor 2: neutral sentence 0 of 100 frames, 50 % voiced, disgust 150 frames, 50 % voiced; sad of sentence 1,
    # which actor 2 has no neutral of (left out); actor 3 is outside the rows, with a disgust 10 times as long.
    actor = np.array([1, 1, 1, 2, 2, 2, 3, 3])
    emotion = np.array([0, 0, DISGUST, 0, DISGUST, SAD, 0, DISGUST])
    statement = np.array([0, 0, 0, 0, 0, 1, 0, 0])
    frames = np.array([100, 100, 160, 100, 150, 300, 100, 1000])
    share = np.array([0.6, 0.6, 0.4, 0.5, 0.5, 0.5, 0.5, 0.5])
    rows = actor < 3
    timing = EmotionTiming.fit(functionals_with_share(share), frames, actor, emotion, rows, statement)
    voiced = np.mean([np.log(64 / 60), np.log(75 / 50)])
    unvoiced = np.mean([np.log(96 / 40), np.log(75 / 50)])
    np.testing.assert_allclose(timing.log_factors[DISGUST], [voiced, unvoiced])
    np.testing.assert_array_equal(timing.log_factors[SAD], [0.0, 0.0])  # no neutral of its sentence by its speaker
    np.testing.assert_array_equal(timing.log_factors[0], [0.0, 0.0])
    assert timing.stretch(DISGUST) == pytest.approx((np.exp(voiced), np.exp(unvoiced)))
    assert timing.stretch(DISGUST, 2.0) == pytest.approx((np.exp(2 * voiced), np.exp(2 * unvoiced)))
    assert timing.as_dict()["disgust"] == pytest.approx({"voiced": np.exp(voiced), "unvoiced": np.exp(unvoiced)})
    assert set(timing.as_dict()) == set(EMOTIONS) and timing.as_dict()["neutral"] == {"voiced": 1.0, "unvoiced": 1.0}
    every_sentence = EmotionTiming.fit(functionals_with_share(share), frames, actor, emotion, rows)
    assert every_sentence.log_factors[SAD, 0] == pytest.approx(np.log(150 / 50))  # against actor 2's neutral of sentence 0
