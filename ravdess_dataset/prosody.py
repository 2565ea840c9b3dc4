"""Prosody frames: pitch, voicing and energy at the log-mel's frame rate, the model input the log-mel lacks.

An 80-band log-mel of 25 ms windows barely resolves the harmonics from which pitch is read, yet pitch, its range
and movement carry much of what hand-crafted emotion features (eGeMAPS) measure. `prosody_frames` gives, for every
log-mel frame, three channels (`PROSODY_CHANNELS`):

- ``f0_semitones``: the fundamental frequency of probabilistic YIN (librosa ``pyin``, Mauch & Dixon 2014) in
  semitones above ``reference_hz``; across unvoiced frames it is interpolated linearly between the voiced ones
  (held at the edges), so the channel is a smooth contour a convolution can read;
- ``voiced_probability``: pyin's probability that the frame is voiced;
- ``energy_db``: the RMS energy of the log-mel's analysis window in dB (floor ``SILENCE[2]``).

This module depends on numpy and librosa only: it travels with the feature extractor of models that read prosody.
"""
from __future__ import annotations

import dataclasses

import librosa
import numpy as np

from .features import MelConfig

PROSODY_CHANNELS = ("f0_semitones", "voiced_probability", "energy_db")
SILENCE = (0.0, 0.0, -100.0)  # the channels' values for padding and for an utterance without a voiced frame
PROSODY_VERSION = 1  # raise it when prosody_frames computes something else: cached frames are then computed again


@dataclasses.dataclass(frozen=True)
class ProsodyConfig:
    """Pitch tracking parameters (librosa ``pyin``).

    Args:
        fmin, fmax: the F0 search range in Hz (65-700 Hz covers adult speech, shouted included).
        frame_length: pyin's analysis window in samples at the log-mel rate (64 ms at 16 kHz: four periods of fmin).
        resolution: pitch grid of the pyin HMM in semitones (0.25: an eighth tone, 3x faster than librosa's 0.1).
        reference_hz: the frequency of 0 semitones.
    """

    fmin: float = 65.0
    fmax: float = 700.0
    frame_length: int = 1024
    resolution: float = 0.25
    reference_hz: float = 55.0

    def __post_init__(self) -> None:
        if not 0 < self.fmin < self.fmax:
            raise ValueError(f"need 0 < fmin < fmax, got fmin={self.fmin}, fmax={self.fmax}")


def prosody_frames(wav: np.ndarray, mel: MelConfig, config: ProsodyConfig = ProsodyConfig()) -> np.ndarray:
    """(frames, 3) float32 prosody of a mono waveform at ``mel.sample_rate``, one row per frame of its log-mel
    (same hop, centred frames: the two have the same length)."""
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim != 1:
        raise ValueError(f"prosody_frames takes a mono waveform (samples,), got shape {wav.shape}")
    frames = 1 + len(wav) // mel.hop_length
    if config.fmax > mel.sample_rate / 2:
        raise ValueError(f"ProsodyConfig.fmax ({config.fmax} Hz) is above the Nyquist frequency of {mel.sample_rate} Hz")
    f0, _, voiced_probability = librosa.pyin(
        wav, fmin=config.fmin, fmax=config.fmax, sr=mel.sample_rate, frame_length=config.frame_length,
        hop_length=mel.hop_length, resolution=config.resolution, center=True)
    voiced = np.isfinite(f0)
    semitones = np.full(len(f0), SILENCE[0])
    if voiced.any():
        steps = np.arange(len(f0))
        semitones = np.interp(steps, steps[voiced], 12 * np.log2(f0[voiced] / config.reference_hz))
    rms = librosa.feature.rms(y=wav, frame_length=mel.win_length, hop_length=mel.hop_length, center=True)[0]
    energy = np.maximum(20 * np.log10(np.maximum(rms, 1e-10)), SILENCE[2])
    out = np.stack([semitones, np.nan_to_num(voiced_probability), energy], 1)[:frames]
    return out.astype(np.float32)
