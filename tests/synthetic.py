"""Synthetic RAVDESS-named audio: harmonic 'voices' with syllable-like envelopes, no real data needed."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf

from ravdess_dataset.naming import RavdessId

SHARED_RAVDESS = Path(os.environ.get("RAVDESS_DIR", Path(__file__).resolve().parents[1] / ".." / "shared" / "ravdess"))


def synth_voice(rate: int, seconds: float = 1.2, f0: float = 140.0, seed: int = 0) -> np.ndarray:
    """A harmonic tone with vibrato, a 3 Hz syllable envelope and a little noise; WebRTC VAD calls it speech."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.1 * np.sin(2 * np.pi * 1.5 * t))) / rate
    harmonics = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = np.clip(np.sin(2 * np.pi * 3 * t), 0, None) ** 0.5
    return (0.1 * harmonics * envelope + 0.003 * rng.standard_normal(len(t))).astype(np.float32)


def two_voices() -> tuple[np.ndarray, slice, slice, slice]:
    """16 kHz: 1 s of a 110 Hz voice, 0.3 s of silence, 1 s at 220 Hz; with the log-mel frames (10 ms) well inside
    the first voice, the silence and the second voice."""
    low, high = synth_voice(16000, 1.0, f0=110.0), synth_voice(16000, 1.0, f0=220.0, seed=1)
    return np.concatenate([low, np.zeros(4800, np.float32), high]), slice(10, 90), slice(105, 125), slice(140, 220)


# Four actors reach every split: 1 and 2 train, 21 validation, 23 test.
CORPUS_ACTORS = (1, 2, 21, 23)
CORPUS_CODES = ((1, 1, 1, 1), (3, 2, 1, 2), (5, 1, 2, 1), (8, 2, 2, 2))  # emotion, intensity, statement, repetition


def write_corpus(root: Path, actors=CORPUS_ACTORS, codes=CORPUS_CODES, suffix: str = ".wav") -> list[Path]:
    """Write ``Actor_XX/03-01-...`` files: 48 kHz, except 44.1 kHz for repetition 2, and stereo for emotion 08."""
    paths = []
    for actor in actors:
        folder = root / f"Actor_{actor:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        for i, (emotion, intensity, statement, repetition) in enumerate(codes):
            rid = RavdessId(3, 1, emotion, intensity, statement, repetition, actor)
            rate = 48000 if repetition == 1 else 44100
            wav = synth_voice(rate, seconds=1.0 + 0.3 * i, f0=110 + 10 * actor + 20 * emotion, seed=actor * 10 + i)
            if emotion == 8:
                wav = np.stack([wav, 0.5 * wav], axis=1)
            path = folder / f"{rid.stem}{suffix}"
            # int16 samples: libsndfile scales floats differently for WAV and FLAC
            sf.write(path, np.round(np.clip(wav, -1, 1) * 32767).astype(np.int16), rate, subtype="PCM_16")
            paths.append(path)
    return paths


