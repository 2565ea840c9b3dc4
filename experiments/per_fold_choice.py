"""The strictly nested number of a recipe selection: each fold scored with the candidate that won *its own*
validation group in `experiments.select_recipe`, instead of the one best on the mean over folds.

    python -m experiments.per_fold_choice eval/selection/recipe_selection.json \
        "a, hop 64=eval/a_cv" "a, hop 16=eval/a_hop16_cv" "b, hop 16=eval/b_cv" --speaker-norm

Each ``CANDIDATE=DIR`` names the ``evaluate.py --cv-train`` output whose fold scores stand for that candidate;
DIR may also be one of its cv_metrics*.json files (for example the ``--segment-hop`` re-probe of the same fold models).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional

import numpy as np


def main(argv: Optional[list[str]] = None) -> dict:
    from evaluate import cv_metrics_name

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("selection", type=Path, help="recipe_selection.json of experiments.select_recipe")
    parser.add_argument("runs", nargs="+", help="CANDIDATE=CV_DIR (or a cv_metrics*.json), one for every candidate some fold chose")
    parser.add_argument("--speaker-norm", action="store_true", help="read cv_metrics_speaker_norm.json")
    args = parser.parse_args(argv)
    table = json.loads(args.selection.read_text())["validation_uar"]
    runs = dict(r.split("=", 1) for r in args.runs)
    name = cv_metrics_name(args.speaker_norm)
    folds = []
    for fold, row in table.items():
        chosen = max(row, key=row.get)
        if chosen not in runs:
            raise SystemExit(f"error: fold {fold} chose {chosen!r}; name its --cv-train output as '{chosen}=DIR'")
        path = Path(runs[chosen])
        scores = {f["fold"]: f for f in json.loads((path if path.suffix == ".json" else path / name).read_text())["folds"]}
        folds.append({"fold": int(fold), "choice": chosen, "uar": scores[int(fold)]["uar"]})
        print(f"fold {fold}: {chosen}: UAR {folds[-1]['uar']:.3f}")
    uar = [f["uar"] for f in folds]
    print(f"per-fold choice: UAR {np.mean(uar):.3f} ± {np.std(uar):.3f}")
    return {"folds": folds, "uar": {"mean": float(np.mean(uar)), "sd": float(np.std(uar))}}


if __name__ == "__main__":
    main()
