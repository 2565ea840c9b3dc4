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


def warp(x: torch.Tensor, speed: float, mel_shift: float, generator: Optional[torch.Generator] = None,
         n_mels: Optional[int] = None) -> torch.Tensor:
    """Speed and pitch perturbation of log-mel segments ``x`` (batch, frames, n_mels): each row's time axis is
    stretched about its centre by a random factor in [1 - ``speed``, 1 + ``speed``] and its mel axis moved by a
    random ``-mel_shift``..``mel_shift`` bands (on the mel scale a pitch shift moves harmonics by roughly
    a constant number of bands), linearly interpolated; positions past an edge repeat the edge. With ``n_mels``
    smaller than the channels of ``x``, the channels after the first ``n_mels`` (prosody frames) are stretched in
    time with their row's bands but not moved along the mel axis."""
    batch, frames, channels = x.shape
    if speed == 0 and mel_shift == 0:
        return x
    n_mels = channels if n_mels is None else n_mels
    scale = 1 + speed * (2 * torch.rand(batch, 1, 1, generator=generator) - 1)
    shift = mel_shift * (2 * torch.rand(batch, 1, 1, generator=generator) - 1) * 2 / max(n_mels - 1, 1)
    warped = _resample(x[..., :n_mels], scale, shift)
    if n_mels == channels:
        return warped
    return torch.cat([warped, _resample(x[..., n_mels:], scale, torch.zeros_like(shift))], -1)


def mixup_pairs(labeled: torch.Tensor, share: float, generator: Optional[torch.Generator] = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup's pairing (Zhang et al. 2018) among the rows of a batch where ``labeled`` (batch,) is true: each row's
    own weight λ and its partner. Each labelled row is mixed with chance ``share``, λ ~ U(0, 1), with a labelled
    partner drawn by a random permutation of them (sometimes itself); every other row keeps λ = 1 and itself.
    Returns (λ (batch,), partner index (batch,)) on ``labeled``'s device."""
    batch = labeled.shape[0]
    rows = torch.nonzero(labeled.cpu()).flatten()
    partner, own = torch.arange(batch), torch.ones(batch)
    partner[rows] = rows[torch.randperm(len(rows), generator=generator)]
    mixed = torch.rand(len(rows), generator=generator) < share
    own[rows] = torch.where(mixed, torch.rand(len(rows), generator=generator), torch.ones(len(rows)))
    return own.to(labeled.device), partner.to(labeled.device)


def _resample(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """``x`` (batch, frames, bands) read at time positions stretched by ``scale`` and band positions moved by ``shift``
    (both (batch, 1, 1), in grid units of [-1, 1]), bilinear, edges repeated."""
    _, frames, bands = x.shape
    time = torch.linspace(-1, 1, frames)[None, :, None] * scale  # (batch, frames, 1), align_corners grid
    band = torch.linspace(-1, 1, bands)[None, None, :] + shift  # (batch, 1, bands)
    grid = torch.stack(torch.broadcast_tensors(band, time), -1).to(x.device, x.dtype)  # (batch, frames, bands, [band, time])
    return nn.functional.grid_sample(x[:, None], grid, mode="bilinear", padding_mode="border", align_corners=True)[:, 0]


def encode_frames(x: torch.Tensor, n_mels: int, encoder: nn.Module, prosody_encoder: Optional[nn.Module]) -> torch.Tensor:
    """(batch, frames, n_mels [+ prosody]) standardised inputs -> (batch, features): the log-mel bands through
    ``encoder`` (a `ConvEncoder`), followed by the prosody channels through ``prosody_encoder`` (a `FrameEncoder`)
    where the model reads them."""
    h = encoder(x[..., :n_mels])
    return h if prosody_encoder is None else torch.cat([h, prosody_encoder(x[..., n_mels:])], -1)


def encoded_size(encoder: "ConvEncoder", prosody_encoder: Optional["FrameEncoder"]) -> int:
    """Features of `encode_frames` with these encoders."""
    return encoder.out_features + (0 if prosody_encoder is None else prosody_encoder.out_features)


def decode_frames(h: torch.Tensor, decoder: nn.Module, prosody_decoder: Optional[nn.Module]) -> torch.Tensor:
    """(batch, in_features) -> (batch, frames, n_mels [+ prosody]): the log-mel bands of ``decoder`` (a
    `ConvDecoder`), followed by the prosody channels of ``prosody_decoder`` (a `FrameDecoder`) where there is one."""
    return decoder(h) if prosody_decoder is None else torch.cat([decoder(h), prosody_decoder(h)], -1)


def speaker_input(speaker_embedding: Optional[torch.Tensor], used: bool) -> Optional[torch.Tensor]:
    """The speaker embedding where the model is conditioned on it (an error if it is missing), else None."""
    if not used:
        return None
    if speaker_embedding is None:
        raise ValueError("this model is speaker-conditioned: pass speaker_embedding (batch, speaker_dim)")
    return speaker_embedding
