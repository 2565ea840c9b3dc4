"""Diagnostics, not headline numbers: what the fold models of finished ``evaluate.py --cv-train`` runs leave unused.

    python results/fold_model_diagnostics.py eval/m2e_contiguous eval/m2e30_contiguous --dataset <full> \\
        --folds contiguous --json eval/diagnostics_contiguous.json

For every fold, each run's fold model embeds the 1440 utterances, every representation is speaker-normalised as
``--speaker-norm`` does it, and the probe of ``evaluate.py`` is fitted on the fold's 20 training actors and scored
(UAR) on its 4 held-out ones, for:

- ``run_K``: run K's embedding alone (its ``cv_metrics*_speaker_norm.json`` number);
- ``runs_side_by_side``: the runs' embeddings side by side, an ensemble of fold models (with two or more runs);
- ``run_0+resemblyzer``, ``run_0+resemblyzer+egemaps`` and ``run_0+handcrafted_all``: the first run's embedding beside
  the baselines' inputs (`experiments.representation.baselines`);
- ``run_0_learned_part`` and ``run_0_input_statistics_part`` (a first run trained with ``input_statistics`` or
  ``input_functionals``): its embedding cut in two, what the model learned and what it read or was handed (its
  ``input_statistics_dim``);
- ``run_0_pooled_logits`` (semi-supervised runs): the classifier's logits averaged over the segments, in place of the
  log of its averaged class probabilities and the pooled z.

They are scored on the held-out actors, so picking one of them by these numbers would break the strict protocol: they
say how far a direction could go, not what a recipe scores. An ensemble also trains several models per fold.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments.data import Utterances  # noqa: E402
from experiments.loading import load_model  # noqa: E402
from experiments.probes import embed_utterances, probe_scores  # noqa: E402
from experiments.representation import baselines, fold_masks, speaker_normalise  # noqa: E402
from modeling.utterance import pool_segments  # noqa: E402
from ravdess_dataset.atomic import write_atomic  # noqa: E402
from ravdess_dataset.splits import FOLDS, NUM_FOLDS, load_all  # noqa: E402


@torch.no_grad()
def pooled_logits(model, utterances: Utterances) -> np.ndarray:
    """(n, num_labels): a semi-supervised model's classifier logits averaged over each utterance's segments."""
    rows = []
    for log_mel in utterances.log_mel:
        segments, lengths, _ = model.segment_utterance(log_mel)
        rows.append(pool_segments(model.classify(segments), lengths).cpu().numpy())
    return np.stack(rows)


def fold_representations(runs: list[Path], fold: int, utterances: Utterances, dataset: Path, references: dict) -> dict:
    """Every representation of the module docstring for one fold, speaker-normalised."""
    normalise = lambda x: speaker_normalise(x, utterances.actor)  # noqa: E731
    found, models = {}, [load_model(str(run / f"fold_{fold}" / "model")) for run in runs]
    views = [utterances.model_view(model.config, dataset) for model in models]
    embedded = [embed_utterances(model, view) for model, view in zip(models, views)]
    for k, x in enumerate(embedded):
        found[f"run_{k}"] = normalise(x)
    if len(runs) > 1:
        found["runs_side_by_side"] = np.hstack([found[f"run_{k}"] for k in range(len(runs))])
    for name, parts in (("run_0+resemblyzer", ["resemblyzer"]), ("run_0+resemblyzer+egemaps", ["resemblyzer", "egemaps"]),
                        ("run_0+handcrafted_all", ["handcrafted_all"])):
        if all(p in references for p in parts):
            found[name] = np.hstack([found["run_0"]] + [references[p] for p in parts])
    if models[0].input_statistics_dim:
        width = models[0].input_statistics_dim
        found["run_0_learned_part"] = normalise(embedded[0][:, :-width])
        found["run_0_input_statistics_part"] = normalise(embedded[0][:, -width:])
    if hasattr(models[0], "classify"):
        found["run_0_pooled_logits"] = normalise(pooled_logits(models[0], views[0]))
    return found


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="evaluate.py --cv-train output folders (fold_K/model inside)")
    parser.add_argument("--dataset", type=Path, required=True, help="the prepared dataset the runs were trained on")
    parser.add_argument("--folds", choices=sorted(FOLDS), default="contiguous")
    parser.add_argument("--json", type=Path, help="write the table here as well")
    args = parser.parse_args(argv)
    missing = [str(run / f"fold_{f}" / "model") for run in args.runs for f in range(NUM_FOLDS)
               if not (run / f"fold_{f}" / "model" / "metrics.json").is_file()]
    if missing:
        parser.error(f"no finished fold model at {missing[0]} ({len(missing)} missing)")
    utterances = Utterances.from_dataset(load_all("mel", args.dataset))
    found, reason = baselines(utterances, args.dataset)
    if reason is not None:
        print(f"no eGeMAPS row: {reason}", file=sys.stderr)
    normalised = {name: speaker_normalise(x, utterances.actor) for name, x in found.items()}
    per_fold: dict[str, list[float]] = {}
    for fold in range(NUM_FOLDS):
        fit, test = fold_masks(utterances.actor, fold, args.folds)
        for name, x in fold_representations(args.runs, fold, utterances, args.dataset, normalised).items():
            per_fold.setdefault(name, []).append(
                probe_scores(x[fit], utterances.emotion[fit], x[test], utterances.emotion[test])["uar"])
        print(f"fold {fold}: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in per_fold.items()), flush=True)
    table = {name: {"uar_mean": float(np.mean(v)), "uar_std": float(np.std(v)), "per_fold": v} for name, v in per_fold.items()}
    table = {"runs": [str(r) for r in args.runs], "folds": args.folds, "representations": table}
    for name, row in table["representations"].items():
        print(f"{name:28s} {row['uar_mean']:.3f} ± {row['uar_std']:.3f}")
    if args.json:
        write_atomic(args.json, json.dumps(table, indent=2))
    return table


if __name__ == "__main__":
    main(sys.argv[1:])
