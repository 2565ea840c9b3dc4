"""Choosing a recipe or an embedding without looking at any fold's held-out actors (nested validation), and the
tables of scores per fold and candidate that the choices are made from (`choose.py` runs them)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from modeling.configuration_common import EMBEDDING_OPTIONS
from ravdess_dataset.splits import fold_train_actors, validation_actors

from .cross_validation import cv_metrics_name
from .data import Utterances
from .errors import CommandError
from .probes import embed_utterances, probe_scores
from .representation import speaker_normalise, usable

SEGMENT_HOPS = (64, 16)  # recipe candidates are embedded from a segment every 64 frames (the dataset's hop) and 4x denser
EMBEDDING_CANDIDATES = ((64, "mean"), (64, "mean_std"), (16, "mean"), (16, "mean_std"))  # (segment_hop, pooling)
INNER_FOLDS = 5

FoldTable = dict[int, dict[str, float]]  # fold -> candidate -> score


def best_candidate(table: FoldTable) -> dict:
    """The candidate with the best mean over folds (ties: the first listed), each candidate's mean, and in how many
    folds each scored best."""
    keys = [list(row) for row in table.values()]
    if any(k != keys[0] for k in keys):
        raise CommandError(f"the folds were scored on different candidates ({keys}); score them again with the same code")
    means = {k: float(np.mean([row[k] for row in table.values()])) for k in keys[0]}
    wins = {k: sum(max(row, key=row.get) == k for row in table.values()) for k in means}
    return {"means": means, "folds_won": wins, "choice": max(means, key=means.get)}


def validation_split(utterances: Utterances, fold: int, group: int, folds: str = "contiguous") -> tuple[Utterances, np.ndarray]:
    """The utterances of fold ``fold``'s 20 training actors (of the fold set ``folds``) and the mask of validation
    group ``group`` among them."""
    subset = utterances.select(np.isin(utterances.actor, fold_train_actors(fold, folds)))
    return subset, np.isin(subset.actor, validation_actors(fold, group, folds=folds))


def training_twins(options: list[dict]) -> list[int]:
    """For each recipe's resolved options (every train.py option by name), the index of the first recipe that trains
    the same weights: the same options apart from ``output_dir`` and `EMBEDDING_OPTIONS`; its own index where none
    does. A recipe that stops early on the probe's score trains alone, since its embedding then picks the weights."""
    def training(o: dict) -> Optional[dict]:
        if o.get("early_stopping_metric") == "probe_uar":
            return None
        return {k: v for k, v in o.items() if k != "output_dir" and k not in EMBEDDING_OPTIONS}

    keys = [training(o) for o in options]
    return [next((j for j in range(i) if key is not None and keys[j] == key), i) for i, key in enumerate(keys)]


def validation_uar(model, subset: Utterances, test: np.ndarray, speaker_norm: bool, seed: int = 0,
                   dataset_dir: Optional[Path] = None) -> dict[int, float]:
    """UAR on the ``test`` rows of `validation_split`'s ``subset`` of a probe fitted on its other rows (the
    fold's other 16 training actors), for each of `SEGMENT_HOPS` (``dataset_dir``: where a model that reads prosody
    finds it)."""
    view = subset.model_view(model.config, dataset_dir)
    scores = {}
    for hop in SEGMENT_HOPS:
        x = embed_utterances(model, view, segment_hop=hop)
        x = speaker_normalise(x, subset.actor) if speaker_norm else x
        scores[hop] = probe_scores(x[~test], subset.emotion[~test], x[test], subset.emotion[test], seed)["uar"]
    return scores


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


def embedding_uars(model, utterances: Utterances, train_actors: Sequence[int], speaker_norm: bool, seed: int = 0,
                   dataset_dir: Optional[Path] = None) -> dict[str, float]:
    """`inner_uar` of each of `EMBEDDING_CANDIDATES` over the actors the model trained on. Only for families that
    trained without labels: a model that used the labels of these very actors cannot be judged on them. A model whose
    default representation does not pool segments (FHVAE's s-vector) is judged at the `EMBEDDING_CANDIDATES` hops with
    its own pooling only, since the others would embed alike. ``dataset_dir``: as for `validation_uar`."""
    if model.config.uses_labels:
        raise CommandError(f"a {model.config.model_type} was trained with the labels of these very actors, so inner folds "
                           "cannot judge its embedding; compare its recipes with `choose.py recipe` instead")
    view = utterances.model_view(model.config, dataset_dir)
    actors = sorted(set(train_actors) & set(utterances.actor.tolist()))
    pools = model.representations[0] in model.pooled_representations
    row = {}
    for hop, pooling in EMBEDDING_CANDIDATES:
        if not pools and pooling != model.config.pooling:
            continue
        x = embed_utterances(model, view, segment_hop=hop, pooling=pooling)
        row[f"hop {hop}, {pooling}"] = inner_uar(speaker_normalise(x, utterances.actor) if speaker_norm else x, utterances, actors, seed)
    return row


def per_fold_choice(table: FoldTable, runs: dict[str, Path], speaker_norm: bool, fold_set: str = "contiguous") -> dict:
    """Each fold scored with the candidate that won *its own* validation (``table``: a recipe selection's validation
    UAR), read from the ``--cv-train`` output named for that candidate in ``runs`` (a folder, whose scores on the fold
    set ``fold_set`` are read, or one of its cv_metrics*.json files)."""
    folds = []
    for fold, row in table.items():
        chosen = max(row, key=row.get)
        if chosen not in runs:
            raise CommandError(f"fold {fold} chose {chosen!r}; name its --cv-train output as '{chosen}=DIR'")
        path = Path(runs[chosen])
        run = json.loads((path if path.suffix == ".json" else path / cv_metrics_name(speaker_norm, folds=fold_set)).read_text())
        held = run.get("fold_set", "contiguous")  # runs written before there were two fold sets
        if held != fold_set:
            raise CommandError(f"{path} holds scores on the {held} folds; the selection was made on the {fold_set} ones")
        scores = {f["fold"]: f for f in run["folds"]}
        folds.append({"fold": int(fold), "choice": chosen, "uar": scores[int(fold)]["uar"]})
    uar = [f["uar"] for f in folds]
    return {"folds": folds, "uar": {"mean": float(np.mean(uar)), "sd": float(np.std(uar))}}


def read_selection(path: Path) -> tuple[FoldTable, str]:
    """The validation table of a recipe_selection.json of `choose.py`, with integer fold numbers, and the fold set it
    was made on (contiguous for one written before there were two)."""
    selection = json.loads(path.read_text())
    return {int(fold): row for fold, row in selection["validation_uar"].items()}, selection.get("fold_set", "contiguous")
