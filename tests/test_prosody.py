"""Prosody frames (pitch, voicing, energy): computed, cached, read by a speech_vae or an M2 beside the log-mel (in dB
or standardised per speaker), and travelling with its feature extractor."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import evaluate
import train
from experiments.data import Utterances
from experiments.errors import CommandError
from modeling import FHVAEConfig, SemiSupervisedVAEConfig, SemiSupervisedVAEModel, SpeechVAEConfig, SpeechVAEModel
from modeling.configuration_common import PROSODY_SILENCE
from modeling.layers import warp
from ravdess_dataset import derived
from ravdess_dataset.features import MelConfig, log_mel
from ravdess_dataset.prosody import SILENCE, prosody_frames
from ravdess_dataset.splits import SPLIT_ACTORS, load_all
from tests.synthetic import synth_voice, two_voices

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--conv_channels", "8", "16", "--latent_dim", "4", "--max_steps", "4", "--report_to", "none"]


def semitones(hz: float) -> float:
    return 12 * np.log2(hz / 55.0)


def test_frames_follow_the_pitch_one_per_log_mel_frame():
    mel = MelConfig()
    wav, first, gap, second = two_voices()
    frames = prosody_frames(wav, mel)
    assert frames.shape == (len(log_mel(wav, mel)), 3) and frames.dtype == np.float32 and np.isfinite(frames).all()
    f0, voiced, energy = frames.T
    # the synthetic voice's f0 at frame k (every 10 ms): the nominal f0 with its 1.5 Hz vibrato of +-10 %
    t = np.arange(len(frames)) * 0.01
    truth = np.where(t < 1.15, semitones(110) + 12 * np.log2(1 + 0.1 * np.sin(2 * np.pi * 1.5 * t)),
                     semitones(220) + 12 * np.log2(1 + 0.1 * np.sin(2 * np.pi * 1.5 * (t - 1.3))))
    for part in (first, second):
        sure = voiced[part] > 0.5
        assert sure.sum() >= 20 and np.median(np.abs(f0[part][sure] - truth[part][sure])) < 0.5
    # across the silence f0 is interpolated between its neighbours, unvoiced, and the energy is at the floor
    assert np.all(np.diff(f0[gap]) >= 0) and semitones(90) < f0[gap].min() and f0[gap].max() < semitones(260)
    assert voiced[gap].max() < 0.2 and np.all(energy[gap] == SILENCE[2])
    assert energy[first].max() > -40


def test_silence_takes_the_silence_values_and_a_stereo_array_is_refused():
    np.testing.assert_array_equal(prosody_frames(np.zeros(8000, np.float32), MelConfig()), np.tile(SILENCE, (51, 1)))
    with pytest.raises(ValueError, match="mono"):
        prosody_frames(np.zeros((8000, 2), np.float32), MelConfig())


def test_dataset_prosody_comes_from_the_audio_config_and_is_cached(prepared, tmp_path, monkeypatch, caplog):
    config, _ = prepared
    mel = load_all("mel", config.output_dir)
    files, log_mels = mel["file"], [np.asarray(m) for m in mel["log_mel"]]
    first = derived.dataset_prosody(config.output_dir, files, cache_dir=tmp_path, num_proc=2)
    assert [len(p) for p in first] == [len(m) for m in log_mels] and all(p.shape[1] == 3 for p in first)
    from datasets import Audio
    audio = load_all("audio", config.output_dir).cast_column("audio", Audio(decode=False))
    blob = audio[audio["file"].index(files[2])]["audio"]["bytes"]
    wav, rate = derived.read_flac(blob)
    assert rate == MelConfig().sample_rate
    np.testing.assert_array_equal(first[2], prosody_frames(wav, MelConfig()))
    monkeypatch.setattr(derived, "_prosody_of_flac", lambda *a: pytest.fail("computed again instead of read from the cache"))
    again = derived.dataset_prosody(config.output_dir, files[::-1], cache_dir=tmp_path)
    for a, b in zip(again, first[::-1]):
        np.testing.assert_array_equal(a, b)
    [cached] = (tmp_path / "prosody").iterdir()
    assert cached.stat().st_mode & 0o777 == 0o644  # other users of a shared cache can read it
    cached.write_bytes(b"not an npz")
    monkeypatch.undo()
    redone = derived.dataset_prosody(config.output_dir, files, cache_dir=tmp_path, num_proc=1)
    assert "damaged cache" in caplog.text and all(np.array_equal(a, b) for a, b in zip(redone, first))
    caplog.clear()
    cached.write_bytes(b"")  # what a crash right after the rename can leave
    redone = derived.dataset_prosody(config.output_dir, files, cache_dir=tmp_path, num_proc=1)
    assert "damaged cache" in caplog.text and all(np.array_equal(a, b) for a, b in zip(redone, first))
    assert [p.name for p in (tmp_path / "prosody").iterdir()] == [cached.name], "a temporary file was left behind"


def test_a_computation_that_fails_names_the_utterance_and_writes_no_cache(prepared, tmp_path, monkeypatch):
    config, _ = prepared
    files = load_all("mel", config.output_dir)["file"]

    def fails(feature_params, source, blob):
        raise RuntimeError("pyin gave up")

    monkeypatch.setattr(derived, "_prosody_of_flac", fails)
    with pytest.raises(ValueError, match=r"prosody of 03-01-\d\d-\d\d-\d\d-\d\d-\d\d: RuntimeError: pyin gave up"):
        derived.dataset_prosody(config.output_dir, files, cache_dir=tmp_path, num_proc=1)
    assert not list(tmp_path.rglob("*.npz"))


KILLED = """
import sys, time
from ravdess_dataset import derived
real = derived._prosody_of_flac
def slow(*args):
    open(sys.argv[3], "a").write("x")
    time.sleep(0.5)
    return real(*args)
derived._prosody_of_flac = slow
from ravdess_dataset.splits import SPLIT_ACTORS, load_all
derived.dataset_prosody(sys.argv[1], load_all("mel", sys.argv[1])["file"], cache_dir=sys.argv[2], num_proc=1)
"""


def test_a_computation_killed_with_sigkill_leaves_no_cache_and_the_rerun_completes(prepared, tmp_path):
    config, _ = prepared
    started = tmp_path / "started"
    process = subprocess.Popen([sys.executable, "-c", KILLED, str(config.output_dir), str(tmp_path / "cache"), str(started)],
                               cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 120
    while not (started.is_file() and len(started.read_text()) >= 2) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "the computation ended before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not list((tmp_path / "cache").rglob("*.npz")), "a killed computation left a cache behind"
    files = load_all("mel", config.output_dir)["file"]
    frames = derived.dataset_prosody(config.output_dir, files, cache_dir=tmp_path / "cache", num_proc=1)
    assert len(frames) == len(files) and len(list((tmp_path / "cache" / "prosody").glob("*.npz"))) == 1


def test_the_model_reads_and_reconstructs_its_prosody_channels():
    torch.manual_seed(0)
    config = SpeechVAEConfig(prosody_dim=3, conv_channels=[8, 16], latent_dim=4, segment_frames=32, n_mels=16)
    model = SpeechVAEModel(config).eval()
    x = torch.randn(2, 32, 19)
    moved = x.clone()
    moved[..., 16:] += 1.0  # only the prosody channels change
    out, out_moved = model(x), model(moved)
    assert out.reconstruction.shape == (2, 32, 19)
    assert not torch.allclose(out.latent_mean, out_moved.latent_mean), "the encoder ignores the prosody channels"
    assert not torch.allclose(out.reconstruction_loss, out_moved.reconstruction_loss)
    light = SpeechVAEModel(SpeechVAEConfig(**{**config.to_dict(), "prosody_weight": 0.0})).eval()
    light.load_state_dict(model.state_dict())
    assert torch.allclose(light(x).reconstruction_loss, light(moved).reconstruction_loss), "prosody_weight 0 still counts"
    with pytest.raises(ValueError, match="fhvae does not read prosody frames"):
        FHVAEConfig(prosody_dim=3)
    with pytest.raises(ValueError, match="prosody_padding must hold 3 values"):
        SpeechVAEConfig(prosody_dim=3, prosody_padding=[0.0])
    with pytest.raises(ValueError, match="prosody_dim must be 0 or 3"):
        SpeechVAEConfig(prosody_dim=2)
    with pytest.raises(ValueError, match="reads 19 channels per frame \\(16 mel bands \\+ 3 prosody channels"):
        model(x[..., :16])


def test_a_short_utterance_is_padded_with_silence_in_every_channel():
    config = SpeechVAEConfig(prosody_dim=3, conv_channels=[8, 16], latent_dim=4, segment_frames=32, n_mels=16, pad_value=-90.0)
    assert list(PROSODY_SILENCE) == list(SILENCE)  # modeling's copy of ravdess_dataset.prosody's silence
    model = SpeechVAEModel(config).eval()
    short = np.random.default_rng(0).normal(size=(20, 19)).astype(np.float32)
    [segment], lengths, _ = model.segment_utterance(short)
    assert lengths.tolist() == [20] and torch.equal(segment[:20], torch.from_numpy(short))
    assert torch.all(segment[20:, :16] == -90.0)
    assert torch.equal(segment[20:, 16:], torch.tensor(SILENCE).expand(12, 3))


def test_m2_reads_prosody_in_its_classifier_and_its_encoder_and_reconstructs_it():
    torch.manual_seed(0)
    config = SemiSupervisedVAEConfig(prosody_dim=3, conv_channels=[8, 16], latent_dim=4, segment_frames=32, n_mels=16)
    model = SemiSupervisedVAEModel(config).eval()
    x, labels = torch.randn(4, 32, 19), torch.tensor([0, 3, -1, -1])
    moved = x.clone()
    moved[..., 16:] += 1.0  # only the prosody channels change
    out, out_moved = model(x, labels=labels), model(moved, labels=labels)
    assert out.reconstruction.shape == (4, 32, 19)
    assert not torch.allclose(out.logits, out_moved.logits), "the classifier ignores the prosody channels"
    given = {"labels": torch.tensor([0, 3, 1, 2])}
    assert not torch.allclose(model.encode(x, **given).latent_dist.mean, model.encode(moved, **given).latent_dist.mean)
    assert model.decode(torch.zeros(2, 4), labels=torch.tensor([0, 1])).sample.shape == (2, 32, 19)
    light = SemiSupervisedVAEModel(SemiSupervisedVAEConfig(**{**config.to_dict(), "prosody_weight": 0.0})).eval()
    light.load_state_dict(model.state_dict())
    mel_only = {"labels": torch.tensor([0, 3, 1, 2])}  # labelled, so that q(y|x) does not weigh the terms
    torch.testing.assert_close(light(x, **mel_only).reconstruction_loss, light(moved, **mel_only).reconstruction_loss)
    with pytest.raises(ValueError, match="reads 19 channels per frame"):
        model.classify(x[..., :16])
    with pytest.raises(ValueError, match="reads 19 channels per frame"):
        model.encode(x[..., :16], labels=given["labels"])


def test_a_loaded_m2_with_prosody_computes_the_same_loss(tmp_path):
    torch.manual_seed(0)
    config = SemiSupervisedVAEConfig(prosody_dim=3, conv_channels=[8, 16], latent_dim=4, segment_frames=32, n_mels=16)
    model = SemiSupervisedVAEModel(config).eval()
    x, labels = torch.randn(4, 32, 19), torch.tensor([0, 3, -1, -1])
    model.save_pretrained(tmp_path)
    loaded = SemiSupervisedVAEModel.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(loaded(x, labels=labels).loss, model(x, labels=labels).loss)


def test_models_without_prosody_keep_their_parameters_and_old_configs_pad_with_silence():
    """The prosody branches exist only where prosody_dim is set: the parameters (names and order, hence the seeded
    initialisation) of models without prosody are those of the code before M2 read prosody; a configuration saved
    before prosody_padding existed pads its prosody channels with silence."""
    small = dict(conv_channels=[8, 16], latent_dim=4, segment_frames=32, n_mels=16)
    m2 = [name.split(".")[0] for name, _ in SemiSupervisedVAEModel(SemiSupervisedVAEConfig(**small)).named_parameters()]
    assert list(dict.fromkeys(m2)) == ["classifier_encoder", "classifier", "encoder", "to_latent", "decoder"]
    vae = [name.split(".")[0] for name, _ in SpeechVAEModel(SpeechVAEConfig(**small)).named_parameters()]
    assert list(dict.fromkeys(vae)) == ["encoder", "to_latent", "decoder"]
    saved = SpeechVAEConfig(prosody_dim=3, pad_value=-90.0, **small).to_dict()
    del saved["prosody_padding"]
    assert SpeechVAEConfig.from_dict(saved).padding() == [-90.0] * 16 + list(PROSODY_SILENCE)


def test_the_classifier_perturbations_stretch_prosody_in_time_but_do_not_shift_or_mask_it():
    g = torch.Generator().manual_seed(0)
    frames, n_mels = 32, 16
    ramp = torch.arange(frames, dtype=torch.float32)[:, None].expand(64, frames, n_mels + 3).clone()
    ramp[..., n_mels:] = ramp[..., n_mels:] * 2 + 5  # prosody channels: another time ramp
    bands = torch.arange(n_mels + 3, dtype=torch.float32).expand(64, frames, n_mels + 3)
    shifted = warp(bands, speed=0.0, mel_shift=3.0, generator=g, n_mels=n_mels)
    assert torch.equal(shifted[..., n_mels:], bands[..., n_mels:]), "the mel shift moved the prosody channels"
    assert shifted[..., :n_mels].max() <= n_mels - 1, "the mel bands read from the prosody channels"
    assert not torch.allclose(shifted[..., :n_mels], bands[..., :n_mels])
    stretched = warp(ramp, speed=0.2, mel_shift=0.0, generator=g, n_mels=n_mels)
    torch.testing.assert_close(stretched[..., n_mels:], stretched[..., :1].expand(64, frames, 3) * 2 + 5)  # same stretch
    both = warp(ramp, speed=0.2, mel_shift=3.0, generator=torch.Generator().manual_seed(5), n_mels=n_mels)
    time_only = warp(ramp, speed=0.2, mel_shift=0.0, generator=torch.Generator().manual_seed(5), n_mels=n_mels)
    torch.testing.assert_close(both[..., n_mels:], time_only[..., n_mels:])  # with both on, prosody is only stretched

    config = SemiSupervisedVAEConfig(prosody_dim=3, conv_channels=[8, 16], latent_dim=4, segment_frames=32, n_mels=16,
                                     mask_feature_count=4, mask_feature_length=16)
    x = torch.randn(8, 32, 19)
    masked = SemiSupervisedVAEModel(config)._augment(x, torch.Generator().manual_seed(1))
    assert torch.equal(masked[..., 16:], x[..., 16:]) and (masked[..., :16] == 0).any()


def test_a_loaded_prosody_model_computes_the_same_loss(tmp_path):
    torch.manual_seed(0)
    model = SpeechVAEModel(SpeechVAEConfig(prosody_dim=3, conv_channels=[8, 16], latent_dim=4, segment_frames=32, n_mels=16)).eval()
    model.save_pretrained(tmp_path)
    loaded = SpeechVAEModel.from_pretrained(tmp_path).eval()
    x = torch.randn(2, 32, 19)
    assert torch.allclose(model(x).reconstruction_loss, loaded(x).reconstruction_loss)


def test_train_and_evaluate_a_prosody_model(prosody_model, tmp_path):
    dataset_dir, model_dir = prosody_model
    saved = json.loads((model_dir / "config.json").read_text())
    assert saved["prosody_dim"] == 3 and saved["n_mels"] == 80
    evaluate.main(["--model", str(model_dir), "--dataset", str(dataset_dir), "--output", str(tmp_path), "--num-audio", "1"])
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["representations"]["embedding"]["dim"] == 8  # mean and std of 4-d segment latents
    assert np.isfinite(metrics["reconstruction"]["mse_db2"])  # in dB over the 80 log-mel bands only
    assert (tmp_path / "audio").is_dir() and any((tmp_path / "audio").iterdir())
    from push_to_hub import render_model_card

    assert "each frame followed by 3 prosody channels" in render_model_card(model_dir, "tester/emo-vae", None, None)


def test_the_saved_extractor_appends_the_prosody_a_model_reads(prosody_model, tmp_path):
    from transformers import AutoFeatureExtractor, AutoModel

    dataset_dir, model_dir = prosody_model
    extractor = AutoFeatureExtractor.from_pretrained(str(model_dir), trust_remote_code=True)
    model = AutoModel.from_pretrained(str(model_dir), trust_remote_code=True).eval()
    wav = synth_voice(16000, 1.5, f0=180.0)
    features = extractor(wav, sampling_rate=16000)
    assert features["log_mel"].shape[1] == 83
    f0, voiced = features["log_mel"][:, 80], features["log_mel"][:, 81]
    assert abs(np.median(f0[voiced > 0.5]) - semitones(180)) < 1.0
    assert model.embed_utterance(**features).shape == (8,)


def test_a_dataset_without_the_audio_config_is_a_one_line_error(corpus, tmp_path):
    from ravdess_dataset.prepare import PrepareConfig, prepare

    config = PrepareConfig(source=str(corpus), output_dir=tmp_path / "no_audio", cache_dir=tmp_path / "cache",
                           configs=("mel", "segments"), num_proc=1)
    prepare(config)
    with pytest.raises(CommandError, match="'audio' config.*--configs mel segments audio"):
        train.main(["configs/speech_vae_prosody.yaml", "--dataset_dir", str(config.output_dir), "--output_dir",
                    str(tmp_path / "o"), *TINY])
    utterances = Utterances.from_dataset(load_all("mel", config.output_dir))
    with pytest.raises(CommandError, match="'audio' config"):
        utterances.model_view(SpeechVAEConfig(prosody_dim=3), config.output_dir)


def test_own_recordings_reach_a_prosody_model_the_same_way_with_or_without_metadata(prosody_model, corpus, tmp_path):
    from tests.test_recordings import write_metadata

    _, model_dir = prosody_model
    metadata = write_metadata(corpus, tmp_path / "meta.csv", absolute=True)
    evaluate.main(["--model", str(model_dir), "--metadata", str(metadata), "--output", str(tmp_path / "with")])
    metrics = json.loads((tmp_path / "with" / "metrics.json").read_text())
    assert metrics["representations"]["embedding"]["dim"] == 8 and metrics["labelled"]
    evaluate.main(["--model", str(model_dir), "--audio", str(corpus), "--export-embeddings", str(tmp_path / "plain.npz")])
    np.testing.assert_allclose(np.load(tmp_path / "plain.npz")["X"], np.load(tmp_path / "with" / "embeddings.npz")["X"], atol=1e-5)


def test_an_m2_standardises_prosody_per_speaker_and_pads_it_with_its_lowest_training_values(prepared, corpus, tmp_path):
    """configs/semisupervised_vae_prosody.yaml: the prosody channels are standardised with the speaker's other
    utterances like the bands, and a short segment is padded per channel with the lowest standardised training value."""
    config, _ = prepared
    out = tmp_path / "m2"
    train.main(["configs/semisupervised_vae_prosody.yaml", "--dataset_dir", str(config.output_dir), "--output_dir", str(out), *TINY])
    saved = json.loads((out / "config.json").read_text())
    assert saved["prosody_dim"] == 3 and saved["input_normalization"] == "speaker"
    utterances = Utterances.from_dataset(load_all("mel", config.output_dir))
    view = utterances.model_view(SemiSupervisedVAEConfig(**saved), config.output_dir)
    standardised = np.concatenate([m for m, actor in zip(view.log_mel, view.actor) if actor in SPLIT_ACTORS["train"]])
    np.testing.assert_allclose(saved["prosody_padding"], standardised[:, 80:].min(0), rtol=1e-5)
    assert saved["pad_value"] == pytest.approx(float(standardised[:, :80].min()), rel=1e-5)
    in_db = utterances.model_view(SemiSupervisedVAEConfig(**{**saved, "input_normalization": "dataset"}), config.output_dir)
    assert view.statistics[0].mean_std()[0].shape == (83,)  # one mean per band and per prosody channel
    for i in range(len(view.file)):
        np.testing.assert_allclose(view.statistics[i].restore(view.log_mel[i]), in_db.log_mel[i], atol=1e-3)
        np.testing.assert_allclose(view.to_db(i, view.log_mel[i]), utterances.log_mel[i], atol=1e-3)
    model = SemiSupervisedVAEModel.from_pretrained(out).eval()
    [segment], _, _ = model.segment_utterance(np.zeros((10, 83), np.float32), speaker_embedding=np.zeros(256, np.float32))
    pad = model.config.segment_frames - 10
    torch.testing.assert_close(segment[10:, 80:], torch.tensor(saved["prosody_padding"]).expand(pad, 3))
    evaluate.main(["--model", str(out), "--dataset", str(config.output_dir), "--output", str(tmp_path / "eval"), "--num-audio", "0"])
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["representations"]["embedding"]["dim"] == 8 + 4  # log q(y|x) and the mean of the 4-d z

    # recordings reach it as the training data did: prosody appended, then everything standardised per speaker
    evaluate.main(["--model", str(out), "--audio", str(corpus), "--export-embeddings", str(tmp_path / "mine.npz")])
    mine = np.load(tmp_path / "mine.npz")
    rows = [view.file.index(Path(f).stem) for f in mine["files"]]
    expected = np.stack([model.embed_utterance(view.log_mel[i], speaker_embedding=view.embedding[i]).numpy() for i in rows])
    np.testing.assert_allclose(mine["X"], expected, atol=1e-4)
