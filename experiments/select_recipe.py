"""Choose between training recipes without looking at any fold's held-out actors (nested validation).

For every fold, each recipe is trained on 16 of the fold's 20 training actors (``train.py --fold K
--validation_group G``) and its utterance embeddings, at each candidate segment hop, are probed: fit on
those 16, scored on the other 4 (the validation group). The fold's own 4 held-out actors are never read,
so this also judges recipes that use emotion labels (semisupervised_vae), which
`experiments.select_embedding` cannot. The candidate with the best mean validation UAR is the choice.

    python -m experiments.select_recipe configs/a.yaml configs/b.yaml --dataset /path/to/prepared \\
        --output eval/selection --speaker-norm --train-args --probe false --report_to none
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional

import numpy as np

from ravdess_dataset.splits import NUM_FOLDS, fold_train_actors, load_all, validation_actors

from .data import Utterances
from .probes import embed_utterances, probe_scores
from .representation import speaker_normalise, usable

SEGMENT_HOPS = (64, 16)  # how densely embed_utterance cuts segments: the dataset's hop, and 4x denser


def validation_split(utterances: Utterances, fold: int, group: int) -> tuple[Utterances, np.ndarray]:
    """The utterances of fold ``fold``'s 20 training actors and the mask of validation group ``group`` among them."""
    subset = utterances.select(np.isin(utterances.actor, fold_train_actors(fold)))
    return subset, np.isin(subset.actor, validation_actors(fold, group))


def validation_uar(model, subset: Utterances, test: np.ndarray, speaker_norm: bool, seed: int = 0) -> dict[int, float]:
    """UAR on the ``test`` rows of `validation_split`'s ``subset`` of a probe fitted on its other rows (the
    fold's other 16 training actors), for each of `SEGMENT_HOPS`."""
    view = subset.model_view(model.config.input_normalization)
    scores = {}
    for hop in SEGMENT_HOPS:
        model.config.segment_hop = hop
        x = embed_utterances(model, view)
        x = speaker_normalise(x, subset.actor) if speaker_norm else x
        scores[hop] = probe_scores(x[~test], subset.emotion[~test], x[test], subset.emotion[test], seed)["uar"]
    return scores


def main(argv: Optional[list[str]] = None) -> dict:
    import train
    from evaluate import load_model

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipes", nargs="+", help="train.py recipes (YAML) to compare")
    parser.add_argument("--dataset", type=Path, default=Path("ravdess_dataset"))
    parser.add_argument("--output", type=Path, required=True, help="models go to OUTPUT/fold_K/<recipe>, the table to OUTPUT/recipe_selection.json")
    parser.add_argument("--group", type=int, default=0, help="which of the 5 groups of a fold's training actors validates (0..4)")
    parser.add_argument("--folds", type=int, nargs="+", default=list(range(NUM_FOLDS)))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--speaker-norm", action="store_true", help="probe the embeddings standardised per speaker")
    parser.add_argument("--train-args", nargs=argparse.REMAINDER, default=[], help="extra train.py options (last)")
    args = parser.parse_args(argv)
    stems = [Path(r).stem for r in args.recipes]
    if len(set(stems)) != len(stems):
        raise SystemExit(f"error: recipes must have distinct file names, got {stems}")
    utterances = Utterances.from_dataset(load_all("mel", args.dataset))
    table: dict[int, dict[str, float]] = {}
    for fold in args.folds:
        subset, test = validation_split(utterances, fold, args.group)
        if not usable(subset.emotion, ~test, test):  # a partial corpus such as the sample
            print(f"fold {fold}: validation actors {validation_actors(fold, args.group)} or the others missing; skipped", flush=True)
            continue
        row = {}
        for recipe, stem in zip(args.recipes, stems):
            folder = args.output / f"fold_{fold}" / stem
            if not (folder / "model.safetensors").is_file():
                train.main([recipe, "--dataset_dir", str(args.dataset), "--output_dir", str(folder), "--fold", str(fold),
                            "--validation_group", str(args.group), "--seed", str(args.seed), *args.train_args])
            scores = validation_uar(load_model(str(folder)), subset, test, args.speaker_norm, args.seed)
            row.update({f"{stem}, hop {hop}": uar for hop, uar in scores.items()})
        table[fold] = row
        print(f"fold {fold} (validation actors {validation_actors(fold, args.group)}): "
              + ", ".join(f"{k} {v:.3f}" for k, v in row.items()), flush=True)
    if not table:
        raise SystemExit(f"error: no fold of {args.folds} has validation utterances in {args.dataset}")
    means = {k: float(np.mean([row[k] for row in table.values()])) for k in next(iter(table.values()))}
    best = max(means, key=means.get)
    wins = {k: sum(max(row, key=row.get) == k for row in table.values()) for k in means}
    print("mean validation UAR: " + ", ".join(f"{k} {v:.3f}" for k, v in means.items()) + f"\nchoice: {best} (best in {wins[best]} of {len(table)} folds)")
    result = {"speaker_norm": args.speaker_norm, "group": args.group, "train_args": args.train_args,
              "validation_uar": table, "mean_validation_uar": means, "folds_won": wins, "choice": best}
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "recipe_selection.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
