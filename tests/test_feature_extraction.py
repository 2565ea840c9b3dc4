"""The feature extractor saved with every model: the same arrays as `prepare`, from paths or waveforms."""
import dataclasses
import json

import numpy as np
import pytest
from datasets import load_dataset
from transformers import AutoFeatureExtractor

import evaluate
from experiments.loading import load_model
import modeling  # noqa: F401  (registers the extractor with AutoFeatureExtractor)
from ravdess_dataset.audio import AudioReadError, read_audio
from ravdess_dataset.feature_extraction import RavdessFeatureExtractor


def extractor_of(config, speaker_embedding=True) -> RavdessFeatureExtractor:
    return RavdessFeatureExtractor(audio=dataclasses.asdict(config.audio), mel=dataclasses.asdict(config.mel),
                                   speaker_embedding=speaker_embedding)


def test_paths_give_exactly_what_prepare_stored(prepared, corpus):
    config, _ = prepared
    rows = {}
    for split in load_dataset(str(config.output_dir), "mel").with_format("numpy").values():
        rows.update({row["file"]: row for row in split})
    files = sorted(corpus.rglob("*.wav"))
    out = extractor_of(config)([str(f) for f in files])
    assert len(out["log_mel"]) == len(files) == len(rows) and out["speaker_embedding"].shape == (len(files), 256)
    for f, log_mel, embedding in zip(files, out["log_mel"], out["speaker_embedding"]):
        # the same code; BLAS threads (one per prepare worker, several here) differ in the last float32 bit
        np.testing.assert_allclose(log_mel, rows[f.stem]["log_mel"], rtol=1e-6, atol=1e-5)
        np.testing.assert_allclose(embedding, rows[f.stem]["embedding"], atol=1e-5)  # other LSTM batches: float rounding


def test_a_waveform_gives_what_its_file_gives(prepared, corpus):
    config, _ = prepared
    extractor = extractor_of(config)
    stereo = next(corpus.rglob("03-01-08-*.wav"))  # the synthetic corpus writes emotion 08 in stereo, at 44.1 or 48 kHz
    wav, rate = read_audio(stereo)
    from_file, from_wave = extractor(str(stereo)), extractor(wav, sampling_rate=rate)
    assert from_file["log_mel"].shape[1] == 80 and from_file["speaker_embedding"].shape == (256,)
    np.testing.assert_array_equal(from_file["log_mel"], from_wave["log_mel"])
    np.testing.assert_array_equal(from_file["speaker_embedding"], from_wave["speaker_embedding"])
    assert extractor(wav, sampling_rate=rate, return_tensors="pt")["log_mel"].shape == from_file["log_mel"].shape
    assert "speaker_embedding" not in extractor_of(config, speaker_embedding=False)(str(stereo))


def test_bad_input_gets_a_clear_error(prepared, tmp_path):
    config, _ = prepared
    extractor = extractor_of(config, speaker_embedding=False)
    with pytest.raises(ValueError, match="sampling_rate"):
        extractor(np.zeros(16000, np.float32))
    with pytest.raises(ValueError, match="mono"):
        extractor(np.zeros((16000, 2), np.float32), sampling_rate=16000)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really")
    with pytest.raises(AudioReadError, match="broken.wav"):
        extractor([str(broken)])
    with pytest.raises(AudioReadError, match="no audio left after silence trimming"):
        extractor(np.zeros(16000, np.float32), sampling_rate=16000)
    with pytest.raises(ValueError, match="n_fft"):
        RavdessFeatureExtractor(mel={"n_fft": 256, "win_length": 400})


def test_every_trained_model_carries_its_extractor(tiny_model, prepared):
    config, _ = prepared
    _, model_dir = tiny_model
    saved = json.loads((model_dir / "preprocessor_config.json").read_text())
    assert saved["auto_map"]["AutoFeatureExtractor"] == "feature_extraction.RavdessFeatureExtractor"
    assert (model_dir / "feature_extraction.py").is_file() and (model_dir / "front_end.py").is_file()
    extractor = AutoFeatureExtractor.from_pretrained(model_dir)
    assert extractor.mel == dataclasses.asdict(config.mel) and extractor.audio == dataclasses.asdict(config.audio)
    assert extractor.speaker_embedding is True  # configs/speech_vae.yaml conditions the decoder on the speaker
    assert extractor.sampling_rate == config.audio.sample_rate and extractor.feature_size == config.mel.n_mels


def test_evaluate_audio_embeds_through_the_extractor(tiny_model, corpus, tmp_path):
    _, model_dir = tiny_model
    evaluate.main(["--model", str(model_dir), "--audio", str(corpus / "Actor_02"), "--export-embeddings", str(tmp_path / "e.npz")])
    saved = np.load(tmp_path / "e.npz")
    model = load_model(str(model_dir))
    extractor = AutoFeatureExtractor.from_pretrained(model_dir)
    first = sorted((corpus / "Actor_02").glob("*.wav"))[0]
    np.testing.assert_allclose(saved["X"][list(saved["files"]).index(first.stem)],
                               model.embed_utterance(**extractor(str(first))).numpy(), rtol=1e-5, atol=1e-6)
