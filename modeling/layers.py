"""Building blocks beside the models: feature normalisation and the convolutional encoder/decoder."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from .configuration_common import check_invertible


class FeatureNorm(nn.Module):
    """Per-mel-band standardisation with statistics saved in the model's weights.

    The statistics are set once from the training data (`set_stats`); a model loaded with
    ``from_pretrained`` therefore normalises its inputs exactly as in training.
    """

    def __init__(self, n_mels: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_mels))
        self.register_buffer("std", torch.ones(n_mels))

    @torch.no_grad()
    def set_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean.copy_(torch.as_tensor(mean, dtype=self.mean.dtype))
        self.std.copy_(torch.as_tensor(std, dtype=self.std.dtype).clamp(min=1e-3))

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        """(..., n_mels) dB -> standardised."""
        return (log_mel - self.mean) / self.std

    def inverse(self, normalized: torch.Tensor) -> torch.Tensor:
        return normalized * self.std + self.mean


class ConvEncoder(nn.Module):
    """(batch, frames, n_mels) -> (batch, features): stride-2 convolutions, then flatten."""

    def __init__(self, n_mels: int, frames: int, channels: Sequence[int]) -> None:
        super().__init__()
        check_invertible(n_mels, frames, channels)
        layers, previous = [], 1
        for c in channels:
            layers += [nn.Conv2d(previous, c, 4, stride=2, padding=1), nn.BatchNorm2d(c), nn.SiLU()]
            previous = c
        self.net = nn.Sequential(*layers)
        factor = 2 ** len(channels)
        self.out_features = channels[-1] * (n_mels // factor) * (frames // factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.transpose(1, 2).unsqueeze(1)).flatten(1)


class ConvDecoder(nn.Module):
    """(batch, in_features) -> (batch, frames, n_mels): a linear map, then stride-2 transposed convolutions."""

    def __init__(self, in_features: int, n_mels: int, frames: int, channels: Sequence[int]) -> None:
        super().__init__()
        check_invertible(n_mels, frames, channels)
        factor = 2 ** len(channels)
        self.shape = (channels[-1], n_mels // factor, frames // factor)
        self.project = nn.Linear(in_features, channels[-1] * self.shape[1] * self.shape[2])
        layers, reversed_channels = [], list(channels[::-1])
        for c_in, c_out in zip(reversed_channels, reversed_channels[1:]):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1), nn.BatchNorm2d(c_out), nn.SiLU()]
        layers.append(nn.ConvTranspose2d(reversed_channels[-1], 1, 4, stride=2, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        x = self.net(torch.nn.functional.silu(self.project(h)).view(-1, *self.shape))
        return x.squeeze(1).transpose(1, 2)


class FrameEncoder(nn.Module):
    """(batch, frames, channels) -> (batch, features): stride-2 convolutions along time only, then flatten; the
    1-D counterpart of `ConvEncoder` for per-frame descriptors such as prosody."""

    def __init__(self, in_channels: int, frames: int, channels: Sequence[int]) -> None:
        super().__init__()
        layers, previous = [], in_channels
        for c in channels:
            layers += [nn.Conv1d(previous, c, 4, stride=2, padding=1), nn.BatchNorm1d(c), nn.SiLU()]
            previous = c
        self.net = nn.Sequential(*layers)
        self.out_features = channels[-1] * (frames // 2 ** len(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.transpose(1, 2)).flatten(1)


class FrameDecoder(nn.Module):
    """(batch, in_features) -> (batch, frames, out_channels): a linear map, then stride-2 transposed convolutions
    along time; the inverse of `FrameEncoder`."""

    def __init__(self, in_features: int, out_channels: int, frames: int, channels: Sequence[int]) -> None:
        super().__init__()
        self.shape = (channels[-1], frames // 2 ** len(channels))
        self.project = nn.Linear(in_features, self.shape[0] * self.shape[1])
        layers, reversed_channels = [], list(channels[::-1])
        for c_in, c_out in zip(reversed_channels, reversed_channels[1:]):
            layers += [nn.ConvTranspose1d(c_in, c_out, 4, stride=2, padding=1), nn.BatchNorm1d(c_out), nn.SiLU()]
        layers.append(nn.ConvTranspose1d(reversed_channels[-1], out_channels, 4, stride=2, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(torch.nn.functional.silu(self.project(h)).view(-1, *self.shape)).transpose(1, 2)


def mask_spans(x: torch.Tensor, count: int, length: int, dim: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """SpecAugment's masking (Park et al. 2019): in each row of ``x`` (batch, frames, n_mels), ``count`` spans
    of a random width 0..``length`` along ``dim`` (1: frames, 2: mel bands) at random places set to 0, the
    mean of standardised inputs."""
    size, batch = x.shape[dim], x.shape[0]
    positions = torch.arange(size)[None, :]
    keep = torch.ones(batch, size, dtype=torch.bool)
    for _ in range(count):
        width = torch.randint(0, min(length, size) + 1, (batch, 1), generator=generator)
        start = (torch.rand(batch, 1, generator=generator) * (size - width + 1)).floor()
        keep &= (positions < start) | (positions >= start + width)
    keep = keep.to(x.device)
    return x * (keep[:, :, None] if dim == 1 else keep[:, None, :])


def warp(x: torch.Tensor, speed: float, mel_shift: float, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Speed and pitch perturbation of log-mel segments ``x`` (batch, frames, n_mels): each row's time axis is
    stretched about its centre by a random factor in [1 - ``speed``, 1 + ``speed``] and its mel axis moved by a
    random ``-mel_shift``..``mel_shift`` bands (on the mel scale a pitch shift moves harmonics by roughly
    a constant number of bands), linearly interpolated; positions past an edge repeat the edge."""
    batch, frames, n_mels = x.shape
    if speed == 0 and mel_shift == 0:
        return x
    scale = 1 + speed * (2 * torch.rand(batch, 1, 1, generator=generator) - 1)
    shift = mel_shift * (2 * torch.rand(batch, 1, 1, generator=generator) - 1) * 2 / max(n_mels - 1, 1)
    time = torch.linspace(-1, 1, frames)[None, :, None] * scale  # (batch, frames, 1), align_corners grid
    mel = torch.linspace(-1, 1, n_mels)[None, None, :] + shift  # (batch, 1, n_mels)
    grid = torch.stack(torch.broadcast_tensors(mel, time), -1).to(x.device, x.dtype)  # (batch, frames, n_mels, [mel, time])
    warped = nn.functional.grid_sample(x[:, None], grid, mode="bilinear", padding_mode="border", align_corners=True)
    return warped[:, 0]


def speaker_input(speaker_embedding: Optional[torch.Tensor], used: bool) -> Optional[torch.Tensor]:
    """The speaker embedding where the model is conditioned on it (an error if it is missing), else None."""
    if not used:
        return None
    if speaker_embedding is None:
        raise ValueError("this model is speaker-conditioned: pass speaker_embedding (batch, speaker_dim)")
    return speaker_embedding
