"""From whole utterances to the fixed-length segments the models see, and back to one vector.

`segment_starts` is the project's one segmentation rule: the dataset's ``segments`` config (`ravdess_dataset.builder`),
training and every model's `embed_utterance` cut with it. It lives here because a model published with its code
(``trust_remote_code``) carries this package's modules and no others.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


def segment_starts(total: int, frames: int, hop: int) -> list[int]:
    """Start frames of the segments of a ``total``-frame utterance; the last one reaches its end."""
    if total <= frames:
        return [0]
    starts = list(range(0, total - frames + 1, hop))
    if starts[-1] != total - frames:
        starts.append(total - frames)
    return starts


def segment_utterance(log_mel, frames: int, hop: int, pad_value: float | Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut a (T, channels) log-mel into segments of ``frames`` at `segment_starts`.

    An utterance shorter than ``frames`` gives one segment padded with ``pad_value``: one number for every
    channel, or one per channel (a model's ``config.padding()``: its ``pad_value`` for the mel bands, its
    ``prosody_padding`` for prosody channels). Returns (segments (S, frames, channels), valid lengths (S,)).
    """
    x = torch.tensor(np.asarray(log_mel), dtype=torch.float32)
    total = x.shape[0]
    if total <= frames:
        padded = torch.empty((frames, x.shape[1]), dtype=x.dtype)
        padded[:] = torch.as_tensor(pad_value, dtype=x.dtype)
        padded[:total] = x
        return padded[None], torch.tensor([total])
    starts = segment_starts(total, frames, hop)
    return torch.stack([x[s : s + frames] for s in starts]), torch.full((len(starts),), frames)


def join_segments(segments: torch.Tensor, total: int, hop: int) -> torch.Tensor:
    """Inverse of `segment_utterance`: (S, frames, n_mels) -> (total, n_mels), overlaps averaged."""
    frames = segments.shape[1]
    out = torch.zeros(max(total, frames), segments.shape[2], dtype=segments.dtype)
    count = torch.zeros(max(total, frames), 1, dtype=segments.dtype)
    for segment, start in zip(segments, segment_starts(total, frames, hop)):
        out[start : start + frames] += segment.cpu()
        count[start : start + frames] += 1
    return (out / count)[:total]


def frame_mask(lengths: torch.Tensor | None, frames: int, like: torch.Tensor) -> torch.Tensor:
    """(batch, frames, 1) mask of the real (unpadded) frames; all ones when ``lengths`` is None."""
    if lengths is None:
        return torch.ones(like.shape[0], frames, 1, dtype=like.dtype, device=like.device)
    steps = torch.arange(frames, device=like.device)
    return (steps[None, :] < lengths.to(like.device)[:, None]).to(like.dtype)[..., None]


def pool_segments(vectors: torch.Tensor, lengths: torch.Tensor, pooling: str = "mean") -> torch.Tensor:
    """One vector from per-segment vectors (S, d): their mean weighted by each segment's real frames; with
    ``pooling="mean_std"`` followed by their standard deviation (weighted the same way), (2 * d,)."""
    weights = lengths.to(vectors.dtype).to(vectors.device)[:, None]
    mean = (vectors * weights).sum(0) / weights.sum()
    if pooling == "mean":
        return mean
    if pooling != "mean_std":
        raise ValueError(f"pooling must be 'mean' or 'mean_std', got {pooling!r}")
    return torch.cat([mean, (((vectors - mean) ** 2 * weights).sum(0) / weights.sum()).sqrt()])


FRAME_STATISTICS = ("mean", "std", "p10", "p25", "p50", "p75", "p90", "mean_abs_delta", "std_delta")


def frame_statistics(frames) -> np.ndarray:
    """Statistics of every channel of a (T, C) frame sequence over time, (len(`FRAME_STATISTICS`) * C,), statistic by
    statistic: mean, std, 10th/25th/50th/75th/90th percentiles, and the mean absolute value and the std of the
    frame-to-frame change (0 for a one-frame sequence)."""
    frames = np.asarray(frames, dtype=np.float64)
    if frames.ndim != 2 or len(frames) == 0:
        raise ValueError(f"frame_statistics needs (frames, channels) with at least one frame, got shape {frames.shape}")
    delta = np.diff(frames, axis=0) if len(frames) > 1 else np.zeros_like(frames)
    return np.concatenate([frames.mean(0), frames.std(0), *np.percentile(frames, [10, 25, 50, 75, 90], axis=0),
                           np.abs(delta).mean(0), delta.std(0)]).astype(np.float32)


def expand_speaker(speaker_embedding, count: int, device: torch.device) -> torch.Tensor | None:
    """One utterance's (speaker_dim,) embedding repeated for its ``count`` segments, or None."""
    if speaker_embedding is None:
        return None
    return torch.as_tensor(np.asarray(speaker_embedding), dtype=torch.float32, device=device).reshape(1, -1).expand(count, -1)
