"""Choose how a speech_vae embeds an utterance without looking at any fold's held-out actors.

For every fold model of an ``evaluate.py --cv-train`` run, each candidate (segment hop x pooling) is
probed with 5 inner folds of that model's own 20 training actors (4 actors each, fit on the other 16);
the fold's held-out actors are never read. The candidate with the best mean inner UAR is the choice.

    python -m experiments.select_embedding eval/speech_vae_cv --dataset /path/to/prepared --speaker-norm
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional

import numpy as np

from ravdess_dataset.splits import NUM_FOLDS, fold_train_actors, load_all

from .data import Utterances
from .probes import embed_utterances, probe_scores
from .representation import speaker_normalise, usable

CANDIDATES = ((64, "mean"), (64, "mean_std"), (16, "mean"), (16, "mean_std"))  # (segment_hop, pooling)
INNER_FOLDS = 5


def inner_uar(x: np.ndarray, utterances: Utterances, actors: list[int], seed: int = 0) -> float:
    """Mean UAR over `INNER_FOLDS` groups of ``actors``, each probed after fitting on the others
    (groups that cannot be scored, as on a partial corpus, are left out)."""
    scores = []
    for group in (actors[k::INNER_FOLDS] for k in range(INNER_FOLDS)):
        test = np.isin(utterances.actor, group)
        fit = np.isin(utterances.actor, actors) & ~test
        if usable(utterances.emotion, fit, test):
            scores.append(probe_scores(x[fit], utterances.emotion[fit], x[test], utterances.emotion[test], seed)["uar"])
    return float(np.mean(scores))


def main(argv: Optional[list[str]] = None) -> dict:
    from evaluate import load_model

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cv_dir", type=Path, help="output folder of evaluate.py --cv-train (holds fold_K/model)")
    parser.add_argument("--dataset", type=Path, default=Path("ravdess_dataset"))
    parser.add_argument("--speaker-norm", action="store_true", help="probe the representations standardised per speaker")
    args = parser.parse_args(argv)
    utterances = Utterances.from_dataset(load_all("mel", args.dataset))
    table = {}
    for fold in range(NUM_FOLDS):
        folder = args.cv_dir / f"fold_{fold}" / "model"
        if not folder.is_dir():
            continue
        model = load_model(str(folder))
        if model.config.model_type != "speech_vae":
            raise SystemExit(f"error: {folder} is a {model.config.model_type}; the candidates are speech_vae settings (a "
                             "semisupervised_vae was trained with the labels of these very actors, so inner folds cannot judge it)")
        view = utterances.model_view(model.config.input_normalization)
        actors = sorted(set(fold_train_actors(fold)) & set(utterances.actor.tolist()))
        table[fold] = {}
        for hop, pooling in CANDIDATES:
            model.config.segment_hop, model.config.pooling = hop, pooling
            x = embed_utterances(model, view)
            x = speaker_normalise(x, utterances.actor) if args.speaker_norm else x
            table[fold][f"hop {hop}, {pooling}"] = inner_uar(x, utterances, actors)
        print(f"fold {fold}: " + ", ".join(f"{k} {v:.3f}" for k, v in table[fold].items()), flush=True)
    means = {k: float(np.mean([row[k] for row in table.values()])) for k in next(iter(table.values()))}
    best = max(means, key=means.get)
    print("mean inner UAR: " + ", ".join(f"{k} {v:.3f}" for k, v in means.items()) + f"\nchoice: {best}")
    result = {"speaker_norm": args.speaker_norm, "inner_uar": table, "mean_inner_uar": means, "choice": best}
    (args.cv_dir / "embedding_selection.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
