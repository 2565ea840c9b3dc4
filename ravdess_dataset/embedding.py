"""Resemblyzer voice embeddings, batched over the windows of many utterances.

``VoiceEncoder.embed_utterance`` runs the LSTM on the few 1.6 s windows of one utterance per
forward pass. Here the windows (same slicing, same 40-band mels) of many utterances are
stacked into one batch; the per-utterance averaging and L2 normalisation are unchanged, so
the embeddings equal the per-file ones up to float rounding.
"""
from __future__ import annotations

from typing import Iterable, Iterator, Sequence, Union

import numpy as np
import torch

from .features import MelConfig, mel_power

EMBEDDING_DIM = 256
# How utterances are cut into encoder windows (Resemblyzer's defaults); part of the cached features' key.
ENCODER_PARAMS = {"model": "resemblyzer-pretrained", "rate": 1.3, "min_coverage": 0.75}


# Resemblyzer's encoder input (its hparams): 40 mel bands of 25 ms windows every 10 ms at 16 kHz.
ENCODER_MEL = MelConfig(sample_rate=16000, n_mels=40, n_fft=400, hop_length=160, win_length=400)


def partial_windows(wav: np.ndarray, rate: float = 1.3, min_coverage: float = 0.75) -> np.ndarray:
    """The encoder mel windows of one preprocessed 16 kHz utterance, shape (n_windows, 160, 40).

    Resemblyzer's slicing and padding with its mel (``resemblyzer.audio.wav_to_mel_spectrogram``)
    computed by `mel_power`, which builds the filter bank once. Pure numpy (no model), so it can
    run in front-end worker processes.
    """
    from resemblyzer import VoiceEncoder

    wav_slices, mel_slices = VoiceEncoder.compute_partial_slices(len(wav), rate, min_coverage)
    needed = wav_slices[-1].stop
    if needed >= len(wav):
        wav = np.pad(wav, (0, needed - len(wav)), "constant")
    mel = mel_power(wav, ENCODER_MEL).astype(np.float32).T
    return np.stack([mel[s] for s in mel_slices])


class BatchedVoiceEncoder:
    """Runs Resemblyzer's pretrained LSTM over batches of windows from many utterances.

    Args:
        device: torch device for the LSTM.
        batch_windows: windows per forward pass.
    """

    def __init__(self, device: Union[str, torch.device] = "cpu", batch_windows: int = 256) -> None:
        from resemblyzer import VoiceEncoder

        self.encoder = VoiceEncoder(device, verbose=False).eval()
        self.device = torch.device(device)
        self.batch_windows = batch_windows

    @torch.inference_mode()
    def embed_windows(self, windows: np.ndarray) -> np.ndarray:
        """Partial embeddings of (n, 160, 40) windows, shape (n, 256), in batches of ``batch_windows``."""
        out = []
        for start in range(0, len(windows), self.batch_windows):
            batch = torch.from_numpy(np.ascontiguousarray(windows[start : start + self.batch_windows]))
            out.append(self.encoder(batch.to(self.device)).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, EMBEDDING_DIM), np.float32)

    def embed_utterances(self, windows: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """(utterance embedding (256,), partial embeddings (n_i, 256)) for each utterance's windows."""
        partials = self.embed_windows(np.concatenate(windows)) if windows else None
        result, start = [], 0
        for w in windows:
            part = partials[start : start + len(w)]
            start += len(w)
            mean = part.mean(axis=0)
            result.append(((mean / np.linalg.norm(mean)).astype(np.float32), part))
        return result

    def stream(self, items: Iterable[tuple[object, np.ndarray]]) -> Iterator[tuple[object, np.ndarray, np.ndarray]]:
        """Embed a stream of ``(key, windows)``, gathering about ``batch_windows`` windows per pass.

        Yields ``(key, embedding, partial_embeddings)`` in input order.
        """
        keys, pending, count = [], [], 0
        for key, windows in items:
            keys.append(key)
            pending.append(windows)
            count += len(windows)
            if count >= self.batch_windows:
                yield from ((k, e, p) for k, (e, p) in zip(keys, self.embed_utterances(pending)))
                keys, pending, count = [], [], 0
        if pending:
            yield from ((k, e, p) for k, (e, p) in zip(keys, self.embed_utterances(pending)))
