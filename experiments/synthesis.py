"""Listening to log-mels: Griffin-Lim resynthesis with the dataset's mel parameters."""
from __future__ import annotations

import librosa
import numpy as np


def griffin_lim(log_mel: np.ndarray, mel_params: dict, n_iter: int = 32, seed: int = 0) -> tuple[np.ndarray, int]:
    """(T, n_mels) dB log-mel (power, ref 1) -> (waveform float32, sample rate), same STFT and filterbank. The initial
    phases are drawn with ``seed``, so a log-mel always gives the same waveform (what is written is what is judged)."""
    power = librosa.db_to_power(np.asarray(log_mel, dtype=np.float32).T)
    magnitude = librosa.feature.inverse.mel_to_stft(power, sr=mel_params["sample_rate"], n_fft=mel_params["n_fft"],
                                                    fmin=mel_params["fmin"], fmax=mel_params["fmax"], power=2.0)
    wav = librosa.griffinlim(magnitude, n_iter=n_iter, hop_length=mel_params["hop_length"], win_length=mel_params["win_length"],
                             n_fft=mel_params["n_fft"], random_state=seed)
    peak = np.abs(wav).max()
    return (wav / peak * 0.9 if peak > 0 else wav).astype(np.float32), mel_params["sample_rate"]
