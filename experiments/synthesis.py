"""Listening to log-mels: Griffin-Lim resynthesis with the dataset's mel parameters."""
from __future__ import annotations

import librosa
import numpy as np


def griffin_lim(log_mel: np.ndarray, mel_params: dict, n_iter: int = 32) -> tuple[np.ndarray, int]:
    """(T, n_mels) dB log-mel (power, ref 1) -> (waveform float32, sample rate), same STFT and filterbank."""
    power = librosa.db_to_power(np.asarray(log_mel, dtype=np.float32).T)
    wav = librosa.feature.inverse.mel_to_audio(
        power, sr=mel_params["sample_rate"], n_fft=mel_params["n_fft"], hop_length=mel_params["hop_length"],
        win_length=mel_params["win_length"], fmin=mel_params["fmin"], fmax=mel_params["fmax"], power=2.0, n_iter=n_iter,
    )
    peak = np.abs(wav).max()
    return (wav / peak * 0.9 if peak > 0 else wav).astype(np.float32), mel_params["sample_rate"]
