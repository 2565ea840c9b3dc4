"""Listening to log-mels: Griffin-Lim resynthesis with the dataset's mel parameters, and a change of a log-mel made
audible on the recording it was computed from (spectral differential filtering and a pitch shift, or the WORLD
vocoder's analysis of the recording, changed and synthesised again)."""
from __future__ import annotations

import functools
import types
import warnings
from dataclasses import dataclass
from typing import Optional

import librosa
import numpy as np

from ravdess_dataset.features import MelConfig, mel_basis

from .errors import CommandError


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


@functools.lru_cache(maxsize=8)
def bin_weights(mel: MelConfig) -> np.ndarray:
    """(n_mels, 1 + n_fft // 2): how much each mel band's change counts at each STFT bin, the filter bank's weights
    of the bin normalised to sum to 1; a bin no band covers (below ``fmin``, above ``fmax``) follows the nearest band.
    Built once per config; do not modify the array returned."""
    basis = mel_basis(mel).astype(np.float64)
    total = basis.sum(0)
    weights = np.divide(basis, total, out=np.zeros_like(basis), where=total > 0)
    centres = librosa.mel_frequencies(mel.n_mels + 2, fmin=mel.fmin, fmax=mel.fmax or mel.sample_rate / 2)[1:-1]
    uncovered = np.flatnonzero(total <= 0)
    bins = librosa.fft_frequencies(sr=mel.sample_rate, n_fft=mel.n_fft)[uncovered]
    weights[np.abs(centres[:, None] - bins[None, :]).argmin(0), uncovered] = 1.0
    return weights


def stft_gain_db(change_db: np.ndarray, mel: MelConfig) -> np.ndarray:
    """(T, 1 + n_fft // 2): a (T, n_mels) change of a log-mel in dB, spread over the STFT bins by `bin_weights`."""
    return np.asarray(change_db, dtype=np.float64) @ bin_weights(mel)


def filter_recording(wav: np.ndarray, change_db: np.ndarray, mel_params: dict) -> np.ndarray:
    """The recording ``wav`` (at the mel sample rate) whose (T, n_mels) log-mel is changed by ``change_db`` (dB per
    frame and band): every frame of its STFT (the log-mel's frames) is scaled, bin by bin, by the change of the bands
    that cover the bin (`stft_gain_db`), and overlap-added again. The recording keeps its own harmonics, phase and
    noise; only what the change moves is moved (direct waveform modification with a spectral differential, as in
    Kobayashi et al., Speech Communication 2018). A change of 0 gives ``wav`` back."""
    mel = MelConfig(**mel_params)
    stft = librosa.stft(np.asarray(wav, dtype=np.float32), n_fft=mel.n_fft, hop_length=mel.hop_length, win_length=mel.win_length)
    if stft.shape[1] != len(change_db):
        raise ValueError(f"a change of {len(change_db)} frames for a recording of {stft.shape[1]} log-mel frames")
    scaled = stft * (10.0 ** (stft_gain_db(change_db, mel).T / 20.0))  # dB of power: amplitude scales by 10^(dB/20)
    return librosa.istft(scaled, hop_length=mel.hop_length, win_length=mel.win_length, n_fft=mel.n_fft,
                         length=len(wav)).astype(np.float32)


def shift_pitch(wav: np.ndarray, rate: int, semitones: float, window_s: float = 0.032) -> np.ndarray:
    """``wav`` with its pitch moved by ``semitones`` and its length kept: librosa's phase-vocoder pitch shift (soxr
    resampling) with speech-length windows of about ``window_s`` (a power of two in samples, hop a quarter of it; the
    library's default of 2048 samples smears speech: at 16 kHz it costs the eGeMAPS judge a tenth of its hit rate on
    real utterances shifted by a hundredth of a semitone, 32 ms windows half that); 0 gives ``wav`` back unchanged."""
    if abs(semitones) < 1e-6:
        return np.asarray(wav, dtype=np.float32)
    n_fft = 2 ** int(round(np.log2(window_s * rate)))
    return librosa.effects.pitch_shift(np.asarray(wav, dtype=np.float32), sr=rate, n_steps=float(semitones), res_type="soxr_hq",
                                       n_fft=n_fft, hop_length=n_fft // 4).astype(np.float32)


def import_pyworld() -> types.ModuleType:
    """The ``pyworld`` module (the `world` extra: the WORLD vocoder), or a `CommandError` that says how to install it.
    Its import of ``pkg_resources`` warns on current setuptools; that warning is not the user's concern."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
            import pyworld
    except ImportError as err:
        raise CommandError(f"conversions made audible by WORLD need the pyworld package ({err}): pip install -e '.[world]'") from None
    return pyworld


def stretched_frames(voiced: np.ndarray, voiced_stretch: float = 1.0, unvoiced_stretch: float = 1.0) -> np.ndarray:
    """The source frame that each frame of a time-stretched utterance repeats (nearest, by the output frame's centre):
    the frames where ``voiced`` (boolean, one per frame) is true last ``voiced_stretch`` frames each, the others
    ``unvoiced_stretch``. Stretches of 1 give every frame once; at least one frame is returned."""
    if voiced_stretch <= 0 or unvoiced_stretch <= 0:
        raise ValueError(f"stretches must be positive, got {voiced_stretch}, {unvoiced_stretch}")
    ends = np.cumsum(np.where(np.asarray(voiced, dtype=bool), voiced_stretch, unvoiced_stretch))
    centres = np.arange(max(1, int(round(ends[-1])))) + 0.5
    return np.minimum(np.searchsorted(ends, centres, side="right"), len(ends) - 1)


WORLD_F0_RANGE_HZ = (71.0, 800.0)  # where `WorldAnalysis` looks for the f0 (DIO's floor and ceiling; pyworld's defaults)


@dataclass(frozen=True)
class ProsodyChange:
    """How a rendering changes the timing and the pitch range of a recording: its voiced and its unvoiced frames last
    ``voiced_stretch`` and ``unvoiced_stretch`` frames each (`stretched_frames`), and its f0 contour in semitones is
    scaled by ``f0_range`` around its median over the voiced frames (`scaled_f0_range`). All 1: no change."""

    voiced_stretch: float = 1.0
    unvoiced_stretch: float = 1.0
    f0_range: float = 1.0


def scaled_f0_range(f0: np.ndarray, factor: float) -> np.ndarray:
    """``f0`` (Hz, 0 where unvoiced) with every voiced frame's distance in semitones from the median of the voiced
    frames multiplied by ``factor`` (positive): its range and slopes scale, its median and its voicing stay."""
    if factor <= 0:
        raise ValueError(f"an f0 range factor must be positive, got {factor}")
    f0 = np.array(f0, dtype=np.float64)
    voiced = f0 > 0
    if factor != 1.0 and voiced.any():
        semitones = 12.0 * np.log2(f0[voiced])
        centre = np.median(semitones)
        f0[voiced] = 2.0 ** ((centre + factor * (semitones - centre)) / 12.0)
    return f0


@dataclass(frozen=True, eq=False)
class WorldAnalysis:
    """A recording of ``length`` samples as the WORLD vocoder (Morise et al. 2016) describes it, one frame per frame of
    its log-mel of ``mel``: f0 in Hz (0 where unvoiced; DIO refined by StoneMask), and the smooth spectral envelope
    (CheapTrick, power) and the aperiodicity (D4C), each (frames, bins)."""

    f0: np.ndarray
    envelope: np.ndarray
    aperiodicity: np.ndarray
    mel: MelConfig
    length: int

    @classmethod
    def of(cls, wav: np.ndarray, mel_params: dict) -> "WorldAnalysis":
        """``wav`` (at the mel sample rate) analysed at the log-mel's frames: ``hop_length`` apart, centred as the
        log-mel's are, as many (DIO can find one frame fewer at some rates and lengths: the last is then repeated)."""
        pyworld, mel = import_pyworld(), MelConfig(**mel_params)
        x = np.asarray(wav, dtype=np.float64)
        f0, times = pyworld.dio(x, mel.sample_rate, *WORLD_F0_RANGE_HZ, frame_period=1000.0 * mel.hop_length / mel.sample_rate)
        f0 = pyworld.stonemask(x, f0, times, mel.sample_rate)
        frames = np.minimum(np.arange(1 + len(x) // mel.hop_length), len(f0) - 1)
        envelope, aperiodicity = pyworld.cheaptrick(x, f0, times, mel.sample_rate), pyworld.d4c(x, f0, times, mel.sample_rate)
        return cls(f0[frames], envelope[frames], aperiodicity[frames], mel, len(x))

    def synthesise(self, semitones: float = 0.0, change_db: Optional[np.ndarray] = None,
                   prosody: ProsodyChange = ProsodyChange()) -> np.ndarray:
        """The waveform (float32) with the f0 moved by ``semitones`` and the envelope of every frame by ``change_db``
        ((frames, n_mels) dB of the log-mel, frame k on WORLD frame k; the change of each band spread over frequency as
        `stft_gain_db` spreads it, read at WORLD's bins), then the f0 range scaled and the voiced and unvoiced frames
        stretched in time as ``prosody`` says (the f0 tells which are voiced). As long as the recording when
        unstretched. The aperiodicity, and so the noise and breath of the recording, is kept; so are the formants when
        only the f0 moves (a phase-vocoder shift moves them with the harmonics)."""
        envelope, rate = self.envelope, self.mel.sample_rate
        if change_db is not None:
            if len(change_db) != len(envelope):
                raise ValueError(f"a change of {len(change_db)} frames for a WORLD analysis of {len(envelope)} log-mel frames")
            stft_hz = librosa.fft_frequencies(sr=rate, n_fft=self.mel.n_fft)
            world_hz = np.linspace(0.0, rate / 2, envelope.shape[1])
            gain_db = np.stack([np.interp(world_hz, stft_hz, g) for g in stft_gain_db(change_db, self.mel)])
            envelope = envelope * 10.0 ** (gain_db / 10.0)  # dB of power, and the envelope is a power spectrum
        f0 = scaled_f0_range(self.f0, prosody.f0_range) * 2.0 ** (semitones / 12.0)
        frames = stretched_frames(self.f0 > 0, prosody.voiced_stretch, prosody.unvoiced_stretch)
        wav = import_pyworld().synthesize(f0[frames], np.ascontiguousarray(envelope[frames]),
                                          np.ascontiguousarray(self.aperiodicity[frames]), rate, 1000.0 * self.mel.hop_length / rate)
        return librosa.util.fix_length(wav, size=int(round(self.length * len(frames) / len(self.f0)))).astype(np.float32)
