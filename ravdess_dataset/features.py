"""Log-mel spectrograms and fixed-length segments for VAE training."""
from __future__ import annotations

import dataclasses
import functools
from typing import Optional

import librosa
import numpy as np


@dataclasses.dataclass(frozen=True)
class MelConfig:
    """Log-mel parameters (librosa ``melspectrogram`` then ``power_to_db`` with ``ref=1``).

    Args:
        sample_rate: rate the waveform is resampled to before the STFT.
        n_mels: mel bands.
        n_fft: FFT size in samples.
        hop_length: frame step in samples.
        win_length: analysis window in samples.
        fmin: lowest mel frequency in Hz.
        fmax: highest mel frequency in Hz (``None``: Nyquist).
        amin: floor of the power before the log, so silence maps to ``10*log10(amin)`` dB.
    """

    sample_rate: int = 16000
    n_mels: int = 80
    n_fft: int = 400
    hop_length: int = 160
    win_length: int = 400
    fmin: float = 0.0
    fmax: Optional[float] = None
    amin: float = 1e-10

    def __post_init__(self) -> None:
        if self.win_length > self.n_fft:
            raise ValueError(f"win_length ({self.win_length}) must not exceed n_fft ({self.n_fft})")
        if self.fmax is not None and self.fmax > self.sample_rate / 2:
            raise ValueError(f"fmax ({self.fmax}) is above the Nyquist frequency of {self.sample_rate} Hz")

    @property
    def floor_db(self) -> float:
        """The value of a silent bin."""
        return float(10 * np.log10(self.amin))


MEL_PRESETS: dict[str, MelConfig] = {
    # The seed research code: 16 kHz, 25 ms windows every 10 ms.
    "research": MelConfig(),
    "research-40": MelConfig(n_mels=40),
    # Tacotron 2 / WaveGlow vocoder settings.
    "waveglow": MelConfig(sample_rate=22050, n_mels=80, n_fft=1024, hop_length=256, win_length=1024, fmax=8000.0),
}


@functools.lru_cache(maxsize=16)
def mel_basis(config: MelConfig) -> np.ndarray:
    """The mel filter bank of ``config``, shape (n_mels, 1 + n_fft // 2); built once per config
    (librosa rebuilds it on every ``melspectrogram`` call, a third of that call's time here)."""
    return librosa.filters.mel(
        sr=config.sample_rate, n_fft=config.n_fft, n_mels=config.n_mels, fmin=config.fmin, fmax=config.fmax
    )


def mel_power(wav: np.ndarray, config: MelConfig) -> np.ndarray:
    """Mel power spectrogram, shape (n_mels, frames): librosa ``melspectrogram`` with ``power=2``."""
    stft = librosa.stft(wav, n_fft=config.n_fft, hop_length=config.hop_length, win_length=config.win_length)
    return mel_basis(config) @ (np.abs(stft) ** 2)


def log_mel(wav: np.ndarray, config: MelConfig) -> np.ndarray:
    """Log-mel spectrogram in dB, shape (frames, n_mels), float32; ``wav`` at ``config.sample_rate``."""
    return librosa.power_to_db(mel_power(wav, config), ref=1.0, amin=config.amin, top_db=None).T.astype(np.float32)


@dataclasses.dataclass(frozen=True)
class SegmentConfig:
    """How utterances are cut into training segments.

    Args:
        frames: segment length in frames.
        hop: frames between segment starts.
    Clips shorter than ``frames`` give one segment padded with the mel floor; its ``length``
    column holds the number of real frames.
    """

    frames: int = 128
    hop: int = 64

    def __post_init__(self) -> None:
        if self.frames < 1 or self.hop < 1:
            raise ValueError(f"segment frames and hop must be positive, got {self.frames}, {self.hop}")
