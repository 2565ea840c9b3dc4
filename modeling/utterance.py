"""From whole utterances to the fixed-length segments the models see, and back to one vector."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch


@dataclass
class SpeakerStatistics:
    """Frame count and per-band sum and sum of squares of one speaker's log-mels (dB).

    A model with ``input_normalization="speaker"`` sees each utterance standardised per band with the
    statistics of the *other* utterances of its speaker (`without`): no labels, only which recordings
    share a voice, so they are available for a new speaker too.
    """

    count: int
    total: np.ndarray
    squares: np.ndarray

    @classmethod
    def of(cls, log_mels: Sequence[np.ndarray]) -> "SpeakerStatistics":
        """The statistics of all frames of ``log_mels``, each (T_i, n_mels)."""
        frames = np.concatenate([np.asarray(m, dtype=np.float64) for m in log_mels])
        return cls(len(frames), frames.sum(0), (frames**2).sum(0))

    def without(self, log_mel: np.ndarray) -> "SpeakerStatistics":
        """The statistics with one of the speaker's utterances left out."""
        m = np.asarray(log_mel, dtype=np.float64)
        if self.count - len(m) <= 0:
            raise ValueError("speaker normalisation needs other utterances of the same speaker; this one is its only one")
        return SpeakerStatistics(self.count - len(m), self.total - m.sum(0), self.squares - (m**2).sum(0))

    def mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        mean = self.total / self.count
        return mean, np.sqrt(np.maximum(self.squares / self.count - mean**2, 1e-6))

    def standardise(self, log_mel: np.ndarray) -> np.ndarray:
        """(T, n_mels) dB -> standardised with these statistics."""
        mean, std = self.mean_std()
        return ((np.asarray(log_mel, dtype=np.float64) - mean) / std).astype(np.float32)

    def restore(self, standardised: np.ndarray) -> np.ndarray:
        """Inverse of `standardise`: back to dB."""
        mean, std = self.mean_std()
        return (np.asarray(standardised, dtype=np.float64) * std + mean).astype(np.float32)


def leave_one_out(log_mels: Sequence[np.ndarray], speakers: Sequence) -> list[SpeakerStatistics]:
    """For each log-mel, the statistics of the other log-mels of its speaker (``speakers``: one
    hashable label per log-mel). Raises ValueError if a speaker has only one."""
    totals = {s: SpeakerStatistics.of([m for m, t in zip(log_mels, speakers) if t == s]) for s in dict.fromkeys(speakers)}
    return [totals[s].without(m) for m, s in zip(log_mels, speakers)]


def segment_starts(total: int, frames: int, hop: int) -> list[int]:
    """Start frames of the segments of a ``total``-frame utterance; the last one reaches its end."""
    if total <= frames:
        return [0]
    starts = list(range(0, total - frames + 1, hop))
    if starts[-1] != total - frames:
        starts.append(total - frames)
    return starts


def segment_utterance(log_mel, frames: int, hop: int, pad_value: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut a (T, n_mels) log-mel into segments of ``frames`` at `segment_starts`.

    An utterance shorter than ``frames`` gives one segment padded with ``pad_value``.
    Returns (segments (S, frames, n_mels), valid lengths (S,)).
    """
    x = torch.tensor(np.asarray(log_mel), dtype=torch.float32)
    total = x.shape[0]
    if total <= frames:
        padded = torch.full((frames, x.shape[1]), pad_value, dtype=x.dtype)
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


def pool_segments(vectors: torch.Tensor, lengths: torch.Tensor, with_std: bool = False) -> torch.Tensor:
    """One vector from per-segment vectors (S, d): their mean weighted by each segment's real frames,
    followed with ``with_std`` by their (equally weighted) standard deviation, (2 * d,)."""
    weights = lengths.to(vectors.dtype).to(vectors.device)[:, None]
    mean = (vectors * weights).sum(0) / weights.sum()
    if not with_std:
        return mean
    return torch.cat([mean, (((vectors - mean) ** 2 * weights).sum(0) / weights.sum()).sqrt()])


def utterance_segments(model, log_mel, speaker_embedding=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """A whole utterance as ``model`` sees it: (segments on the model's device, valid lengths,
    the speaker embedding repeated per segment or None)."""
    c = model.config
    segments, lengths = segment_utterance(log_mel, c.segment_frames, c.segment_hop, c.pad_value)
    return segments.to(model.device), lengths, expand_speaker(speaker_embedding, len(segments), model.device)


def expand_speaker(speaker_embedding, count: int, device: torch.device) -> torch.Tensor | None:
    """One utterance's (speaker_dim,) embedding repeated for its ``count`` segments, or None."""
    if speaker_embedding is None:
        return None
    return torch.as_tensor(np.asarray(speaker_embedding), dtype=torch.float32, device=device).reshape(1, -1).expand(count, -1)
