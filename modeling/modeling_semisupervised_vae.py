"""`SemiSupervisedVAEModel`: the M2 model of Kingma, Rezende, Mohamed and Welling (NIPS 2014).

    q(y | x)     ConvEncoder -> softmax over the emotions
    q(z | x, y)  ConvEncoder features + one-hot y -> N(mu, sigma)
    p(x | y, z)  ConvDecoder over [z, one-hot y (, speaker)]
Labelled segments: -ELBO(x, y) + alpha * -log q(y | x). Unlabelled: the ELBO summed over y weighted by
q(y | x), plus the entropy of q(y | x). In training the classifier may see speed/pitch-perturbed (``perturb_*`` options) and
SpecAugment-masked inputs (``mask_*``); the VAE always sees them as they are.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from .configuration_semisupervised_vae import SemiSupervisedVAEConfig
from .distributions import DiagonalGaussian
from .layers import ConvDecoder, ConvEncoder, FeatureNorm, mask_spans, speaker_input, warp
from .objectives import kl_penalty
from .utterance import expand_speaker, frame_mask, pool_segments, utterance_segments


@dataclass
class SemiSupervisedVAEOutput(ModelOutput):
    """Output of `SemiSupervisedVAEModel.forward`.

    Args:
        loss: the M2 objective over the batch (labelled and unlabelled segments), a scalar.
        reconstruction_loss: Gaussian negative log-likelihood, nats per segment (expected over q(y|x) when unlabelled).
        kl: KL(q(z|x,y) || N(0, I)) per segment, unweighted.
        kl_penalty: the KL term as weighted by the objective at this step.
        classification_loss: -log q(y|x) over the labelled segments (0 when none).
        logits: (batch, num_labels) of q(y|x).
        reconstruction: (batch, frames, n_mels) log-mel in dB, decoded with the label (or the predicted class).
        example_reconstruction_loss: (batch,) reconstruction negative log-likelihood of each example.
        example_kl: (batch,) unweighted KL of each example; with the previous field, the negative ELBO.
        latent_mean, latent_logvar: (batch, latent_dim) of q(z | x, y).
    """

    loss: Optional[torch.Tensor] = None
    reconstruction_loss: Optional[torch.Tensor] = None
    kl: Optional[torch.Tensor] = None
    kl_penalty: Optional[torch.Tensor] = None
    classification_loss: Optional[torch.Tensor] = None
    logits: Optional[torch.Tensor] = None
    reconstruction: Optional[torch.Tensor] = None
    example_reconstruction_loss: Optional[torch.Tensor] = None
    example_kl: Optional[torch.Tensor] = None
    latent_mean: Optional[torch.Tensor] = None
    latent_logvar: Optional[torch.Tensor] = None


class SemiSupervisedVAEPreTrainedModel(PreTrainedModel):
    config_class = SemiSupervisedVAEConfig
    base_model_prefix = "semisupervised_vae"
    main_input_name = "log_mel"


class SemiSupervisedVAEModel(SemiSupervisedVAEPreTrainedModel):
    """M2 over (frames, n_mels) segments; see `SemiSupervisedVAEConfig`."""

    def __init__(self, config: SemiSupervisedVAEConfig) -> None:
        super().__init__(config)
        c = config
        self.norm = FeatureNorm(c.n_mels)
        self.classifier_encoder = ConvEncoder(c.n_mels, c.segment_frames, c.conv_channels)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(self.classifier_encoder.out_features, c.num_labels))
        self.encoder = ConvEncoder(c.n_mels, c.segment_frames, c.conv_channels)
        self.to_latent = nn.Linear(self.encoder.out_features + c.num_labels + c.encoder_speaker_dim, 2 * c.latent_dim)
        self.decoder = ConvDecoder(c.latent_dim + c.num_labels + c.decoder_speaker_dim, c.n_mels, c.segment_frames, c.conv_channels)
        self.post_init()

    def classify(self, log_mel: torch.Tensor) -> torch.Tensor:
        """Logits of q(y | x), (batch, num_labels)."""
        return self._classify_normalized(self.norm(log_mel))

    def _classify_normalized(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.classifier_encoder(x))

    def _augment(self, x: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
        """The classifier's training view of standardised segments: speed and pitch perturbation, then
        SpecAugment masks over frames and bands."""
        c = self.config
        x = warp(x, c.perturb_speed, c.perturb_mel_shift, generator)
        x = mask_spans(x, c.mask_time_count, c.mask_time_length, 1, generator)
        return mask_spans(x, c.mask_feature_count, c.mask_feature_length, 2, generator)

    def _one_hot(self, labels: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(labels, self.config.num_labels).float()

    def _posterior(self, features: torch.Tensor, y: torch.Tensor, speaker: Optional[torch.Tensor]) -> DiagonalGaussian:
        h = torch.cat([features, y] + ([speaker] if speaker is not None else []), -1)
        mean, logvar = self.to_latent(h).chunk(2, dim=-1)
        return DiagonalGaussian(mean, logvar)

    def encode(
        self, log_mel: torch.Tensor, labels: Optional[torch.Tensor] = None, speaker_embedding: Optional[torch.Tensor] = None
    ) -> DiagonalGaussian:
        """q(z | x, y) over (batch, latent_dim); without ``labels`` y is the classifier's prediction."""
        labels = self.classify(log_mel).argmax(-1) if labels is None else labels
        speaker = speaker_input(speaker_embedding, self.config.encoder_speaker_dim > 0)
        return self._posterior(self.encoder(self.norm(log_mel)), self._one_hot(labels), speaker)

    def decode(self, z: torch.Tensor, labels: torch.Tensor, speaker_embedding: Optional[torch.Tensor] = None) -> torch.Tensor:
        """p(x | y, z): (batch, latent_dim) and (batch,) emotion ids -> (batch, frames, n_mels) dB."""
        return self.norm.inverse(self._decode_normalized(z, self._one_hot(labels), speaker_embedding))

    def _decode_normalized(self, z: torch.Tensor, y: torch.Tensor, speaker_embedding: Optional[torch.Tensor]) -> torch.Tensor:
        speaker = speaker_input(speaker_embedding, self.config.decoder_speaker_dim > 0)
        return self.decoder(torch.cat([z, y] + ([speaker] if speaker is not None else []), -1))

    def forward(
        self,
        log_mel: torch.Tensor,
        labels: Optional[torch.Tensor] = None,
        speaker_embedding: Optional[torch.Tensor] = None,
        lengths: Optional[torch.Tensor] = None,
        step: Optional[int] = None,
        generator: Optional[torch.Generator] = None,
    ) -> SemiSupervisedVAEOutput:
        """The M2 objective. ``labels`` (batch,) holds emotion ids, -1 where the label is not used."""
        c, batch = self.config, log_mel.shape[0]
        labels = torch.full((batch,), -1, dtype=torch.long, device=log_mel.device) if labels is None else labels
        labeled = labels >= 0
        x = self.norm(log_mel)
        logits = self._classify_normalized(self._augment(x, generator) if self.training else x)
        q_y = logits.softmax(-1)
        # Unlabelled segments are paired with every class, labelled ones only with their own (the other
        # pairs would carry weight 0): pairs (row, class), ordered by row.
        weights = torch.where(labeled[:, None], self._one_hot(labels.clamp(min=0)), q_y)  # (batch, K)
        keep = (~labeled[:, None] | (torch.arange(c.num_labels, device=x.device) == labels[:, None])).flatten()
        rows = torch.arange(batch, device=x.device).repeat_interleave(c.num_labels)[keep]
        classes = torch.arange(c.num_labels, device=x.device).repeat(batch)[keep]
        pair_weights = weights[rows, classes]
        speaker_enc = speaker_input(speaker_embedding, c.encoder_speaker_dim > 0)
        speaker_dec = speaker_input(speaker_embedding, c.decoder_speaker_dim > 0)
        pick = lambda t: None if t is None else t[rows]  # noqa: E731
        y = self._one_hot(classes)
        posterior = self._posterior(self.encoder(x)[rows], y, pick(speaker_enc))
        z = posterior.sample(generator) if self.training else posterior.mode()
        recon = self._decode_normalized(z, y, pick(speaker_dec))
        mask = frame_mask(lengths, x.shape[1], x)[rows]
        nll = 0.5 * (((recon - x[rows]) ** 2) * mask).sum((1, 2))  # (pairs,)
        example_nll = torch.zeros(batch, dtype=nll.dtype, device=x.device).index_add(0, rows, pair_weights * nll)
        expected_kl = torch.zeros(batch, c.latent_dim, dtype=nll.dtype, device=x.device).index_add(
            0, rows, pair_weights[:, None] * posterior.kl())  # (batch, latent_dim)
        reconstruction_loss = example_nll.mean()
        penalty = kl_penalty(expected_kl, c, step)
        entropy = -(q_y * logits.log_softmax(-1)).sum(-1)
        unlabeled_entropy = (entropy * ~labeled).sum() / batch
        classification = (
            nn.functional.cross_entropy(logits[labeled], labels[labeled]) if labeled.any() else torch.zeros((), device=x.device)
        )
        chosen = classes == weights.argmax(-1)[rows]  # one pair per row: its label, or the likeliest class
        return SemiSupervisedVAEOutput(
            loss=reconstruction_loss + penalty - unlabeled_entropy + c.classifier_weight * classification * labeled.float().mean(),
            reconstruction_loss=reconstruction_loss,
            kl=expected_kl.sum(-1).mean(),
            kl_penalty=penalty,
            classification_loss=classification,
            logits=logits,
            reconstruction=self.norm.inverse(recon[chosen]),
            example_reconstruction_loss=example_nll,
            example_kl=expected_kl.sum(-1),
            latent_mean=posterior.mean[chosen],
            latent_logvar=posterior.logvar[chosen],
        )

    @torch.no_grad()
    def classify_utterance(self, log_mel) -> torch.Tensor:
        """q(y | utterance): class probabilities (num_labels,) averaged over its segments by real frames."""
        segments, lengths, _ = utterance_segments(self, log_mel)
        return pool_segments(self.classify(segments).softmax(-1), lengths)

    @torch.no_grad()
    def embed_utterance(self, log_mel, speaker_embedding: Optional[torch.Tensor] = None) -> torch.Tensor:
        """One vector per utterance: [log of `classify_utterance` (num_labels), z means of its segments
        (inferred with the predicted class), averaged by real frames (latent_dim)]."""
        segments, lengths, speaker = utterance_segments(self, log_mel, speaker_embedding)
        logits = self.classify(segments)
        probs = pool_segments(logits.softmax(-1), lengths)
        z = pool_segments(self.encode(segments, logits.argmax(-1), speaker).mean, lengths)
        return torch.cat([probs.clamp(min=1e-6).log(), z])

    @torch.no_grad()
    def generate(
        self, labels: torch.Tensor, speaker_embedding: Optional[torch.Tensor] = None, generator: Optional[torch.Generator] = None
    ) -> torch.Tensor:
        """Decode z ~ N(0, I) with the given emotion ids (num_samples,): (num_samples, frames, n_mels) dB."""
        labels = torch.as_tensor(labels, device=self.device)
        z = torch.randn(len(labels), self.config.latent_dim, generator=generator).to(self.device)
        speaker = expand_speaker(speaker_embedding, len(labels), self.device)
        return self.decode(z, labels, speaker)
