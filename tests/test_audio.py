import numpy as np
import pytest
import soundfile as sf

from ravdess_dataset.audio import AudioConfig, AudioReadError, load_and_preprocess, preprocess, read_audio
from ravdess_dataset.embedding import BatchedVoiceEncoder, partial_windows
from tests.synthetic import synth_voice


def test_stereo_is_averaged_and_rates_are_resampled(tmp_path):
    left = synth_voice(44100, 1.0)
    sf.write(tmp_path / "s.wav", np.stack([left, np.zeros_like(left)], axis=1), 44100, subtype="FLOAT")
    wav, rate = read_audio(tmp_path / "s.wav")
    assert rate == 44100 and wav.ndim == 1
    np.testing.assert_allclose(wav, left / 2, atol=1e-7)
    out, duration = load_and_preprocess(tmp_path / "s.wav", AudioConfig(trim_silence=False, normalize_loudness=False))
    assert duration == pytest.approx(1.0) and len(out) == 16000


def test_quiet_audio_is_raised_and_loud_audio_kept():
    quiet = 0.001 * synth_voice(16000)
    config = AudioConfig(trim_silence=False)
    assert np.abs(preprocess(quiet, 16000, config)).max() > 10 * np.abs(quiet).max()
    loud = 0.9 * synth_voice(16000) / np.abs(synth_voice(16000)).max()
    np.testing.assert_array_equal(preprocess(loud, 16000, config), loud)


def test_long_silence_is_trimmed_and_short_kept():
    voice = synth_voice(16000)
    long_gap = np.concatenate([voice, np.zeros(16000, np.float32), voice])
    assert len(preprocess(long_gap, 16000, AudioConfig())) < len(long_gap) - 8000
    assert len(preprocess(long_gap, 16000, AudioConfig(trim_silence=False))) == len(long_gap)


def test_front_end_matches_resemblyzer(tmp_path):
    from resemblyzer import preprocess_wav

    sf.write(tmp_path / "v.wav", np.concatenate([synth_voice(48000), np.zeros(30000), synth_voice(48000, seed=1)]), 48000)
    ours, _ = load_and_preprocess(tmp_path / "v.wav")
    reference = preprocess_wav(tmp_path / "v.wav")
    assert len(ours) == len(reference)
    np.testing.assert_allclose(ours, reference, atol=1e-4)


@pytest.mark.parametrize(
    "content, problem",
    [(b"", "cannot decode"), (b"this is not audio at all" * 40, "cannot decode"), ("truncated", "cannot decode"), ("empty", "empty")],
)
def test_bad_files_name_the_file(tmp_path, content, problem):
    path = tmp_path / "03-01-01-01-01-01-01.wav"
    if content == "truncated":
        sf.write(path, synth_voice(16000), 16000)
        path.write_bytes(path.read_bytes()[:30])
    elif content == "empty":
        sf.write(path, np.zeros(0, np.float32), 16000)
    else:
        path.write_bytes(content)
    with pytest.raises(AudioReadError) as err:
        load_and_preprocess(path)
    assert str(path) in str(err.value) and problem in str(err.value)


def test_encoder_mel_is_resemblyzers():
    from resemblyzer.audio import wav_to_mel_spectrogram

    from ravdess_dataset.embedding import ENCODER_MEL
    from ravdess_dataset.features import mel_power

    wav = preprocess(synth_voice(16000, 1.3, f0=140, seed=3), 16000, AudioConfig())
    np.testing.assert_allclose(mel_power(wav, ENCODER_MEL).astype(np.float32).T, wav_to_mel_spectrogram(wav), rtol=1e-6)


def test_batched_embeddings_match_embed_utterance():
    from resemblyzer import VoiceEncoder

    wavs = [preprocess(synth_voice(16000, 1.0 + 0.7 * i, f0=100 + 30 * i, seed=i), 16000, AudioConfig()) for i in range(6)]
    encoder = BatchedVoiceEncoder(batch_windows=5)  # batches cut across utterances
    batched = list(encoder.stream((i, partial_windows(w)) for i, w in enumerate(wavs)))
    reference = VoiceEncoder("cpu", verbose=False)
    assert [key for key, _, _ in batched] == list(range(6))
    for (key, embedding, partials), wav in zip(batched, wavs):
        expected, expected_partials, _ = reference.embed_utterance(wav, return_partials=True)
        assert float(embedding @ expected) >= 0.999
        assert partials.shape == expected_partials.shape
