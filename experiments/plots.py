"""Figures: loss curves and original-vs-reconstructed log-mels."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ravdess_dataset.atomic import atomic_path  # noqa: E402


def save_figure(fig, path: Path) -> None:
    """Write a figure as PNG, atomically (`atomic_path`), and free it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def reconstruction_figure(original, reconstructed, titles=None):
    """Rows of (original, reconstruction) log-mels, each (frames, n_mels)."""
    n = len(original)
    fig, axes = plt.subplots(n, 2, figsize=(8, 2.2 * n), squeeze=False)
    for i in range(n):
        for j, (img, name) in enumerate(((original[i], "original"), (reconstructed[i], "reconstruction"))):
            ax = axes[i][j]
            ax.imshow(img.detach().cpu().float().numpy().T if hasattr(img, "detach") else img.T, origin="lower", aspect="auto", cmap="magma")
            ax.set_title(f"{titles[i]}: {name}" if titles else name, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    return fig


def plot_curves(history: dict, path: Path) -> None:
    """Training loss parts per step and evaluation loss / probe per evaluation, as one PNG."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
    train, evaluation = history.get("train", []), history.get("eval", [])
    for key in ("loss", "reconstruction_loss"):
        axes[0].plot([r["step"] for r in train], [r[key] for r in train], label=f"train {key}")
    axes[0].plot([r["step"] for r in evaluation], [r["eval_loss"] for r in evaluation], "o-", label="eval loss")
    axes[0].set_yscale("log")
    axes[1].plot([r["step"] for r in train], [r["kl"] for r in train], label="train KL")
    axes[1].plot([r["step"] for r in evaluation], [r["eval_kl"] for r in evaluation], "o-", label="eval KL")
    probed = [r for r in evaluation if "probe_uar" in r]  # a run resumed with --probe false has evaluations without it
    if probed:
        axes[2].plot([r["step"] for r in probed], [r["probe_uar"] for r in probed], "o-", label="probe UAR")
        axes[2].axhline(0.125, color="grey", linestyle=":", label="chance")
    else:
        axes[2].text(0.5, 0.5, "no emotion probe in this run", ha="center", va="center", transform=axes[2].transAxes)
    for ax in axes:
        ax.set_xlabel("step")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def projection_figure(x, utterances, seed: int = 0):
    """2-D t-SNE of utterance embeddings coloured by emotion, actor and gender."""
    from sklearn.manifold import TSNE
    from sklearn.preprocessing import StandardScaler

    from ravdess_dataset.naming import EMOTIONS, GENDERS

    perplexity = min(30.0, (len(x) - 1) / 3)  # small datasets need a smaller one
    points = TSNE(2, random_state=seed, init="pca", perplexity=perplexity).fit_transform(StandardScaler().fit_transform(x))
    fig, axes = plt.subplots(1, 3, figsize=(16, 5))
    for ax, (name, values, labels, cmap) in zip(axes, (
        ("emotion", utterances.emotion, EMOTIONS, "tab10"),
        ("actor", utterances.actor - 1, [f"{a:02d}" for a in range(1, 25)], "tab20"),
        ("gender", utterances.gender, GENDERS, "coolwarm"),
    )):
        scatter = ax.scatter(points[:, 0], points[:, 1], c=values, cmap=cmap, s=6, vmin=0, vmax=len(labels) - 1)
        ax.set_title(f"t-SNE coloured by {name}")
        ax.set_xticks([])
        ax.set_yticks([])
        if len(labels) <= 8:
            handles = [plt.Line2D([], [], marker="o", linestyle="", color=scatter.cmap(scatter.norm(i))) for i in range(len(labels))]
            ax.legend(handles, labels, fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def confusion_figure(confusion):
    """Emotion confusion matrix (rows: true, columns: predicted), normalised per row."""
    from ravdess_dataset.naming import EMOTIONS

    rates = confusion / confusion.sum(1, keepdims=True).clip(min=1)
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(EMOTIONS)), EMOTIONS, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(EMOTIONS)), EMOTIONS, fontsize=8)
    for i in range(len(EMOTIONS)):
        for j in range(len(EMOTIONS)):
            ax.text(j, i, f"{rates[i, j]:.2f}", ha="center", va="center", fontsize=6)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.tight_layout()
    return fig


def traversal_figure(model, log_mel, speaker, dims: int = 4, steps: int = 5):
    """Decode the first segment's latent with its most active dimensions moved from -2 to +2 sd (with the emotion the
    model inferred, for families that model it)."""
    import numpy as np
    import torch

    segments, _, speaker = model.segment_utterance(log_mel, speaker_embedding=speaker)
    speaker = None if speaker is None else speaker[:1]
    with torch.no_grad():
        encoded = model.encode(segments[:1], speaker_embedding=speaker)
        z = encoded.latent_dist.mean[0]
        active = torch.argsort(encoded.latent_dist.kl()[0], descending=True)[:dims]  # most informative dimensions
        fig, axes = plt.subplots(len(active), steps, figsize=(2.2 * steps, 1.8 * len(active)), squeeze=False)
        for row, d in enumerate(active.tolist()):
            for col, value in enumerate(np.linspace(-2, 2, steps)):
                moved = z.clone()
                moved[d] = value
                decoded = model.decode(moved[None], speaker_embedding=speaker, labels=encoded.labels).sample[0]
                image = decoded[:, : model.config.n_mels].cpu().numpy()  # the log-mel bands (prosody channels follow)
                axes[row][col].imshow(image.T, origin="lower", aspect="auto", cmap="magma")
                axes[row][col].set_xticks([])
                axes[row][col].set_yticks([])
                axes[row][col].set_title(f"z[{d}] = {value:+.1f}", fontsize=7)
    fig.suptitle("Latent traversals: the decoded first segment (frames across, mel bands up) as one dimension moves;\n"
                 "the other dimensions stay at the utterance's posterior mean", fontsize=8)
    fig.tight_layout()
    return fig
