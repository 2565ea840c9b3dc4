"""Figures: loss curves and original-vs-reconstructed log-mels."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


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
    if evaluation and "probe_uar" in evaluation[0]:
        axes[2].plot([r["step"] for r in evaluation], [r["probe_uar"] for r in evaluation], "o-", label="probe UAR")
        axes[2].axhline(0.125, color="grey", linestyle=":", label="chance")
    for ax in axes:
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
