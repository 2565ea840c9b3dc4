"""How the rule that chooses a conversion's strengths does, measured inside one fold's training actors only: the
design study behind `experiments.conversion.choose_strengths`, not a headline number.

    python results/strength_choice.py <fold model> <full dataset> --fold 0 --folds contiguous --json eval/choice_c0.json

With ``--conversion-audio world --conversion-prosody`` (`evaluate.py`), `conversion` converts the neutral utterances of
the fold's validation group 0 (4 of its 20 training actors) at every pair of `CONVERSION_STRENGTHS` (the latent
shift) and `PROSODY_STRENGTHS`, with the emotion means, prosody factors and eGeMAPS judge fitted on the other 16,
and keeps for each target emotion the pair the judge hears best on the conversions to it (`choose_strengths`; up to
commit 3aee439 it kept one pair for every target, the pair heard best over all of them). This script does the same
for each of the fold's 5 validation groups in turn and records, per group and pair, whether the judge named each
conversion's target. Then, for every ordered pair of groups (one chooses, the other is scored at the choice), it
compares the two rules: one pair for every target, and one pair per target. The held-out actors of the fold are
never read; the fold's model saw all 20 training actors in training, as it has when `conversion` chooses.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path
from typing import Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments import conversion as C  # noqa: E402
from experiments.data import Utterances  # noqa: E402
from experiments.emotion_prosody import EmotionProsody  # noqa: E402
from experiments.loading import load_model  # noqa: E402
from experiments.representation import fold_masks  # noqa: E402
from ravdess_dataset import egemaps  # noqa: E402
from ravdess_dataset.atomic import write_atomic  # noqa: E402
from ravdess_dataset.naming import EMOTIONS  # noqa: E402
from ravdess_dataset.splits import FOLDS, NUM_FOLDS, VALIDATION_GROUPS, load_all, validation_actors  # noqa: E402


def group_hits(model, view: Utterances, functionals: np.ndarray, audible: C.ConversionAudio, latents: np.ndarray,
               fit: np.ndarray, validation: np.ndarray, seed: int,
               segment_hop: Optional[int] = None) -> tuple[dict[tuple[float, float], np.ndarray], np.ndarray]:
    """As `conversion` hears its validation conversions (`strength_hits`): for each (shift, prosody) pair, whether the
    judge fitted on ``fit`` minus ``validation`` names the target of each neutral utterance of ``validation`` converted
    to each other emotion; and the targets, in the same order."""
    inner = fit & ~validation
    means = C.emotion_means(latents, view.emotion, inner)
    judge = C.Judge.fit(functionals, view, inner, True, seed)
    prosody, params = EmotionProsody.of_utterances(functionals, view, inner), model.config.feature_params
    heard = lambda i, t, m, p: C.heard_egemaps(C.heard_audio(model, view, i, m, audible, prosody.change(t, p)), params)  # noqa: E731
    return C.strength_hits(model, view, validation, list(range(1, len(EMOTIONS))), means, judge, heard, C.PROSODY_STRENGTHS, segment_hop)


def scored_at(choice: dict[int, tuple[float, float]], hits: dict[tuple[float, float], np.ndarray], wanted: np.ndarray) -> float:
    """The share of conversions named right when each target's conversions take the pair ``choice`` gives it."""
    return float(np.mean([hits[choice[t]][k] for k, t in enumerate(wanted)]))


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a fold model trained by evaluate.py --cv-train (out/fold_K/model)")
    parser.add_argument("dataset", type=Path, help="the prepared dataset it was trained on, with its audio config")
    parser.add_argument("--fold", type=int, required=True, help="the fold the model was trained for")
    parser.add_argument("--folds", choices=sorted(FOLDS), default="contiguous")
    parser.add_argument("--seed", type=int, default=0, help="the judge's seed, as evaluate.py's --seed")
    parser.add_argument("--segment-hop", type=int, default=None, help="as evaluate.py's --segment-hop (default: the model's)")
    parser.add_argument("--json", type=Path, help="write the readings here as well")
    args = parser.parse_args(argv)
    if args.fold not in range(NUM_FOLDS):
        parser.error(f"--fold takes 0..{NUM_FOLDS - 1}, got {args.fold}")
    C.check_conversion_audio("world", prosody=True)
    model = load_model(args.model)
    view = Utterances.from_dataset(load_all("mel", args.dataset)).model_view(model.config, args.dataset)
    functionals, reason = egemaps.dataset_functionals(args.dataset, view.file)
    if functionals is None:
        parser.error(reason)
    audible = C.ConversionAudio.load(args.dataset, view.file, "world", prosody=True)
    fit, _ = fold_masks(view.actor, args.fold, args.folds)
    latents = C.conversion_latents(model, view, fit, args.segment_hop)
    groups = []
    for g in range(VALIDATION_GROUPS):
        validation = np.isin(view.actor, validation_actors(args.fold, g, folds=args.folds))
        groups.append(group_hits(model, view, functionals, audible, latents, fit, validation, args.seed, args.segment_hop))
        print(f"group {g}: " + ", ".join(f"{s:g}/{p:g} {np.mean(h):.3f}" for (s, p), h in groups[-1][0].items()), flush=True)
    one_pair, per_target = [], []
    for (chooser_hits, chooser_wanted), (hits, wanted) in itertools.permutations(groups, 2):
        best = max(chooser_hits, key=lambda pair: np.mean(chooser_hits[pair]))
        one_pair.append(scored_at(dict.fromkeys(np.unique(wanted).tolist(), best), hits, wanted))
        per_target.append(scored_at(C.choose_strengths(chooser_hits, chooser_wanted), hits, wanted))
    result = {"model": args.model, "fold": args.fold, "folds": args.folds,
              "rates": [{f"{s:g}/{p:g}": float(np.mean(h)) for (s, p), h in hits.items()} for hits, _ in groups],
              "one_pair_for_every_target": float(np.mean(one_pair)), "one_pair_per_target": float(np.mean(per_target)),
              "scored_pairs_of_groups": len(one_pair)}
    print(f"{args.folds} fold {args.fold}, chosen on one validation group and scored on another (mean of {len(one_pair)}): "
          f"one pair for every target {result['one_pair_for_every_target']:.3f}, one pair per target {result['one_pair_per_target']:.3f}")
    if args.json:
        write_atomic(args.json, json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    from experiments.errors import run_command

    run_command(main)
