"""How good is a trained representation? Probes, speaker leakage, reconstructions, figures, audio, conversion.

    python evaluate.py --model runs/speech_vae --output eval/speech_vae
    python evaluate.py --model runs/fhvae --export-embeddings emb.npz
    python evaluate.py --model runs/speech_vae --audio my_recordings/ --export-embeddings mine.npz
    python evaluate.py --cv-train configs/fhvae.yaml --output eval/fhvae_cv     # the strict protocol

Reading order: load model and utterances, embed, probes (model and baselines on the same folds),
reconstruction, figures, audio, emotion conversion, report.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import soundfile as sf
import torch
from transformers import AutoFeatureExtractor, AutoModel

import modeling  # registers the families with AutoModel and their feature extractor
from experiments.data import Utterances, dataset_params
from experiments.probes import embed_utterances, fit_probe, probe_scores
from experiments.recordings import leave_one_speaker_out, read_metadata, recording_baselines
from experiments.report import recordings_report, recordings_table, results_table, write_report
from experiments.representation import (
    assess, baselines, fold_masks, log_mel_statistics, speaker_leakage, speaker_moments, speaker_normalise, unseen_sentence_scores, usable,
)
from experiments.plots import confusion_figure, projection_figure, reconstruction_figure, traversal_figure
from experiments.synthesis import griffin_lim
from modeling.utterance import join_segments, leave_one_out, pool_segments, utterance_segments
from ravdess_dataset.console import configure_console
from ravdess_dataset.naming import EMOTIONS
from ravdess_dataset.splits import FOLDS, NUM_FOLDS, fold_actors, load_all, validation_actors

HELD_OUT = fold_actors(NUM_FOLDS - 1)  # 21-24: never trained on by a research-split model (train.py: 1-20)


def load_model(name: str, segment_hop: Optional[int] = None):
    """A model folder or hub id; this project's families load with or without remote code. ``segment_hop``:
    embed utterances from a segment every that many frames instead of the saved config's."""
    model = AutoModel.from_pretrained(name, trust_remote_code=True).eval()
    if not hasattr(model, "embed_utterance"):
        raise SystemExit(f"error: {name} is a {type(model).__name__}, not one of this project's VAE families")
    if segment_hop is not None:
        if segment_hop <= 0:
            raise SystemExit(f"error: --segment-hop must be positive, got {segment_hop}")
        model.config.segment_hop = segment_hop
    return model


def speaker_of(model, utterances: Utterances, i: int):
    return utterances.embedding[i] if model.config.speaker_conditioning != "none" else None


def model_representations(model, utterances: Utterances) -> dict[str, np.ndarray]:
    """The model's utterance embeddings; FHVAE gives both its s-vector and pooled z1."""
    if model.config.model_type == "fhvae":
        return {"s_vector": embed_utterances(model, utterances), "z1": embed_utterances(model, utterances, factor="z1")}
    return {"embedding": embed_utterances(model, utterances)}


@torch.no_grad()
def reconstruct_utterance(model, log_mel: np.ndarray, speaker) -> np.ndarray:
    """The model's reconstruction of a whole utterance (segments decoded and overlap-averaged)."""
    segments, lengths, speaker = utterance_segments(model, log_mel, speaker)
    out = model(log_mel=segments, lengths=lengths, speaker_embedding=speaker)
    return join_segments(out.reconstruction, len(log_mel), model.config.segment_hop).numpy()


def reconstruction_metrics(model, utterances: Utterances, view: Utterances, held: np.ndarray) -> dict:
    """MSE (dB^2) and log-spectral distance (dB, RMS over bands, mean over frames) on held-out actors;
    ``view``: the utterances as the model sees them (`Utterances.model_view`)."""
    mse, lsd = [], []
    for i in np.flatnonzero(held):
        reconstruction = view.to_db(i, reconstruct_utterance(model, view.log_mel[i], speaker_of(model, view, i)))
        error = reconstruction - utterances.log_mel[i]
        mse.append(np.mean(error**2))
        lsd.append(np.mean(np.sqrt(np.mean(error**2, axis=1))))
    return {"mse_db2": float(np.mean(mse)), "log_spectral_distance_db": float(np.mean(lsd)), "utterances": int(held.sum())}


CONVERSION_STRENGTHS = (1.0, 2.0, 3.0, 4.0)  # multiples of the emotion shift, one chosen inside the training actors


@torch.no_grad()
def conversion_latent(model, log_mel: np.ndarray, speaker, label: int) -> np.ndarray:
    """The utterance-level latent that conversion moves: speech_vae, its segments' posterior means averaged;
    semisupervised_vae, the same of z inferred with the utterance's ``label``; fhvae, its s-vector (mu2)."""
    if model.config.model_type == "fhvae":
        return model.embed_utterance(log_mel, speaker).numpy()
    segments, lengths, speaker = utterance_segments(model, log_mel, speaker)
    if model.config.model_type == "semisupervised_vae":
        posterior = model.encode(segments, torch.full((len(segments),), label), speaker)
    else:
        posterior = model.encode(segments, speaker)
    return pool_segments(posterior.mean, lengths).numpy()


def conversion_latents(model, utterances: Utterances, rows: np.ndarray) -> np.ndarray:
    """(n, d): the `conversion_latent` of each utterance of ``rows`` with its own label (0 elsewhere)."""
    chosen = np.flatnonzero(rows)
    latents = np.stack([conversion_latent(model, utterances.log_mel[i], speaker_of(model, utterances, i), int(utterances.emotion[i]))
                        for i in chosen])
    out = np.zeros((len(utterances.emotion), latents.shape[1]), dtype=latents.dtype)
    out[chosen] = latents
    return out


def emotion_means(latents: np.ndarray, emotion: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(emotions, d): the mean of ``latents`` (`conversion_latents`) of each emotion over ``rows`` (0 where absent)."""
    means = np.zeros((len(EMOTIONS), latents.shape[1]), dtype=np.float32)
    for e in np.unique(emotion[rows]):
        means[e] = latents[rows & (emotion == e)].mean(0)
    return means


@torch.no_grad()
def convert_emotion(model, log_mel: np.ndarray, speaker, source: int, target: int, shift: np.ndarray) -> np.ndarray:
    """Move an utterance from emotion ``source`` to ``target``: add ``shift`` (a multiple of the target's mean
    `conversion_latent` minus the source's) to every segment's latent, and add what that changes in the
    decoder's output to the utterance itself, so that the detail the VAE does not reconstruct is kept.
    speech_vae: its z moves; fhvae: the sequence-level z2, z1 kept; semisupervised_vae: z inferred with the
    source label moves and is decoded with the target label."""
    c = model.config
    segments, _, speaker = utterance_segments(model, log_mel, speaker)
    labels = lambda label: torch.full((len(segments),), label)  # noqa: E731
    if c.model_type == "semisupervised_vae":
        z = model.encode(segments, labels(source), speaker).mean
    elif c.model_type == "fhvae":
        z1, z = (q.mean for q in model.encode_factors(segments, speaker))
    else:
        z = model.encode(segments, speaker).mean

    def decode(latent: torch.Tensor, label: int) -> torch.Tensor:
        if c.model_type == "semisupervised_vae":
            return model.decode(latent, labels(label), speaker)
        if c.model_type == "fhvae":
            return model.decode(torch.cat([z1, latent], -1), speaker)
        return model.decode(latent, speaker)

    change = decode(z + torch.as_tensor(shift, dtype=torch.float32), target) - decode(z, source)
    return log_mel + join_segments(change, len(log_mel), c.segment_hop).numpy()


@dataclass
class Judge:
    """A probe fitted on utterance vectors of the training actors that names the emotion of a new vector
    made from utterance ``i``; with ``moments`` (`speaker_moments` of the vectors) the vector is first
    standardised with the statistics of utterance i's speaker's other utterances."""

    probe: object
    moments: Optional[tuple[np.ndarray, np.ndarray]] = None

    @classmethod
    def fit(cls, x: np.ndarray, utterances: Utterances, rows: np.ndarray, speaker_norm: bool, seed: int) -> "Judge":
        moments = speaker_moments(x, utterances.actor) if speaker_norm else None
        x = (x - moments[0]) / moments[1] if moments else x
        return cls(fit_probe(x[rows], utterances.emotion[rows], seed), moments)

    def predict(self, vectors: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Emotions of ``vectors`` (n, d), each made from utterance ``rows[k]``."""
        if self.moments is not None:
            vectors = (vectors - self.moments[0][rows]) / self.moments[1][rows]
        return self.probe.predict(vectors)


def convert_neutral(model, utterances: Utterances, rows: np.ndarray, targets: list[int], means: np.ndarray, strength: float):
    """Each neutral utterance of ``rows`` converted to each of ``targets``: yields (utterance, target, log-mel)."""
    for i in np.flatnonzero(rows & (utterances.emotion == 0)):
        for target in targets:
            shift = strength * (means[target] - means[0])
            yield i, target, convert_emotion(model, utterances.log_mel[i], speaker_of(model, utterances, i), 0, target, shift)


def conversion(model, utterances: Utterances, embedding: np.ndarray, baseline: np.ndarray, out: Path, args,
               fold: int = NUM_FOLDS - 1, folds: str = "contiguous") -> dict:
    """Convert every neutral utterance of fold ``fold``'s held-out actors (default 21-24) to the 7 other
    emotions and score the results with probes fitted on the other actors: on the model's embedding, on
    log-mel statistics in dB (independent of the model), and on those statistics standardised per speaker.
    The shift's strength is the one of `CONVERSION_STRENGTHS` whose conversions of a fifth of the training
    actors (validation group 0 of the fold, 1, 6, 11, 16 by default) the log-mel probe of the other training
    actors recognises best; the held-out actors play no part in the choice. For scale, each probe's hit rate
    on the real utterances of those emotions by the held-out actors. ``utterances``: as the model sees them
    (`Utterances.model_view`)."""
    held = np.isin(utterances.actor, fold_actors(fold, folds))
    fit = ~held
    targets = [e for e in range(1, len(EMOTIONS)) if (fit & (utterances.emotion == e)).any()]  # all 7 on the full corpus
    to_statistics = lambda i, log_mel: log_mel_statistics([utterances.to_db(i, log_mel)])[0]  # noqa: E731

    latents = conversion_latents(model, utterances, fit)  # the training actors', each computed once
    validation = np.isin(utterances.actor, validation_actors(fold, 0, folds=folds))
    inner = fit & ~validation
    rates = {}
    if usable(utterances.emotion, inner, validation & (utterances.emotion == 0)):
        means, judge = emotion_means(latents, utterances.emotion, inner), Judge.fit(baseline, utterances, inner, False, args.seed)
        for strength in CONVERSION_STRENGTHS:
            items = list(convert_neutral(model, utterances, validation, targets, means, strength))
            predicted = judge.predict(np.stack([to_statistics(i, m) for i, _, m in items]), np.array([i for i, _, _ in items]))
            rates[strength] = float(np.mean(predicted == [t for _, t, _ in items]))
    strength = max(rates, key=rates.get) if rates else 1.0

    means = emotion_means(latents, utterances.emotion, fit)
    judges = {"model_probe": Judge.fit(embedding, utterances, fit, False, args.seed),
              "log_mel_probe": Judge.fit(baseline, utterances, fit, False, args.seed),
              "log_mel_probe_speaker_norm": Judge.fit(baseline, utterances, fit, True, args.seed)}
    items = list(convert_neutral(model, utterances, held, targets, means, strength))
    rows, wanted = np.array([i for i, _, _ in items], dtype=int), np.array([t for _, t, _ in items])
    for n, (i, target, converted) in enumerate(items):
        if n // len(targets) < args.num_audio:
            write_wav(out / "audio" / f"{utterances.file[i]}_to_{EMOTIONS[target]}.wav", utterances.to_db(i, converted), model)
    vectors = {"model_probe": np.stack([model.embed_utterance(m, speaker_of(model, utterances, i)).numpy() for i, _, m in items]) if items else None}
    vectors["log_mel_probe"] = vectors["log_mel_probe_speaker_norm"] = np.stack([to_statistics(i, m) for i, _, m in items]) if items else None
    real = held & np.isin(utterances.emotion, targets)
    result = {"conversions": len(items), "targets": [EMOTIONS[e] for e in targets], "strength": strength,
              "strength_rates_on_training_actors": {str(k): v for k, v in rates.items()}}
    for name, judge in judges.items():
        source = embedding if name == "model_probe" else baseline
        result[f"target_rate_{name}"] = float(np.mean(judge.predict(vectors[name], rows) == wanted)) if items else 0.0
        result[f"{name}_rate_on_real_utterances"] = (
            float(np.mean(judge.predict(source[real], np.flatnonzero(real)) == utterances.emotion[real])) if real.any() else None)
    return result


def write_wav(path: Path, log_mel: np.ndarray, model) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    wav, rate = griffin_lim(log_mel, model.config.feature_params["mel"])
    sf.write(path, wav, rate)


def figures(model, utterances: Utterances, view: Utterances, x: np.ndarray, result: dict, out: Path, args) -> None:
    """Projection, confusion matrix, reconstructions per emotion, latent traversals (in the model's
    units), training curves; ``view``: the utterances as the model sees them."""
    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    projection_figure(x, utterances, args.seed).savefig(fig_dir / "projection.png", dpi=100)
    confusion_figure(np.asarray(result["emotion"]["confusion"])).savefig(fig_dir / "confusion.png", dpi=100)
    held = np.isin(utterances.actor, HELD_OUT)
    emotions = [e for e in range(len(EMOTIONS)) if (held & (utterances.emotion == e)).any()]  # one utterance each
    chosen = [np.flatnonzero(held & (utterances.emotion == e))[0] for e in emotions]
    originals = [utterances.log_mel[i] for i in chosen]
    recons = [view.to_db(i, reconstruct_utterance(model, view.log_mel[i], speaker_of(model, view, i))) for i in chosen]
    reconstruction_figure(originals, recons, titles=[EMOTIONS[e] for e in emotions]).savefig(fig_dir / "reconstructions.png", dpi=100)
    traversal_figure(model, view.log_mel[chosen[0]], speaker_of(model, view, chosen[0])).savefig(fig_dir / "traversals.png", dpi=100)
    curves = Path(args.model) / "loss_curves.png"
    if curves.is_file():
        shutil.copy(curves, fig_dir / "training_curves.png")
    for i, reconstruction in list(zip(chosen, recons))[: args.num_audio]:
        write_wav(out / "audio" / f"{utterances.file[i]}_original.wav", utterances.log_mel[i], model)
        write_wav(out / "audio" / f"{utterances.file[i]}_reconstructed.wav", reconstruction, model)


def load_feature_extractor(name: str, model):
    """The model's saved feature extractor; for a local model saved before models carried one, the same
    extractor built from its config's feature parameters."""
    folder = Path(name)
    if folder.is_dir() and not (folder / "preprocessor_config.json").is_file():
        return modeling.RavdessFeatureExtractor.from_model_config(model.config)
    return AutoFeatureExtractor.from_pretrained(name, trust_remote_code=True)


def audio_files(paths: list[str]) -> list[Path]:
    """The files named, and the audio files inside the folders named."""
    from ravdess_dataset.sources import find_audio

    return [f for p in map(Path, paths) for f in (sorted(find_audio(p)) if p.is_dir() else [p])]


def embed_audio_files(model, extractor, files: list[Path], speakers: Optional[list] = None) -> np.ndarray:
    """Embed arbitrary recordings with the model's own front end (its feature extractor), (n, d).

    A model with ``input_normalization="speaker"`` standardises each recording with the other recordings of its
    speaker: ``speakers`` (one name per file), by default the file's folder."""
    from ravdess_dataset.audio import AudioReadError

    try:
        inputs = extractor([str(f) for f in files])
    except AudioReadError as err:
        raise SystemExit(f"error: {err}") from None
    log_mels, voices = inputs["log_mel"], inputs.get("speaker_embedding", [None] * len(files))
    if model.config.input_normalization == "speaker":
        speakers = speakers or [f.parent for f in files]
        count = Counter(speakers)
        lone = next((f for f, s in zip(files, speakers) if count[s] == 1), None)
        if lone is not None:
            raise SystemExit(f"error: {lone}: this model standardises each recording with other recordings of the same "
                             "speaker, and this speaker has no other; give each speaker several recordings (one folder "
                             "per speaker, or the speaker column of --metadata)")
        log_mels = [s.standardise(m) for s, m in zip(leave_one_out(log_mels, speakers), log_mels)]
    return np.stack([model.embed_utterance(m, voice).numpy() for m, voice in zip(log_mels, voices)])


def evaluate_recordings(model_dir: str, metadata: Path, out: Path, args) -> dict:
    """Recordings listed in a metadata CSV (`experiments.recordings`): the model's embedding beside the baselines,
    each raw and standardised per speaker, probed leave-one-speaker-out where emotions are given; writes
    metrics.json, report.md and embeddings.npz to ``out``."""
    from ravdess_dataset.audio import AudioConfig, AudioReadError
    from ravdess_dataset.features import MelConfig

    try:
        recordings = read_metadata(metadata)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    model = load_model(model_dir, args.segment_hop)
    extractor = load_feature_extractor(model_dir, model)
    files, speakers = [r.path for r in recordings], np.array([r.speaker for r in recordings])
    embedding = embed_audio_files(model, extractor, files, list(speakers))
    try:
        references, egemaps_missing = recording_baselines(files, AudioConfig(**extractor.audio), MelConfig(**extractor.mel))
    except AudioReadError as err:
        raise SystemExit(f"error: {err}") from None
    labelled = all(r.emotion is not None for r in recordings)
    emotion = np.array([r.emotion for r in recordings]) if labelled else None
    results = {}
    for name, x in {"embedding": embedding, **references}.items():
        normalised = speaker_normalise(x, speakers)
        results[name] = {"kind": "model" if name == "embedding" else "baseline", "dim": int(x.shape[1]),
                         "raw": leave_one_speaker_out(x, emotion, speakers, args.seed) if labelled else None,
                         "speaker_norm": leave_one_speaker_out(normalised, emotion, speakers, args.seed) if labelled else None}
    metrics = {"model": str(model_dir), "metadata": str(metadata), "recordings": len(files), "speakers": len(set(speakers)),
               "labelled": labelled, "seed": args.seed, "representations": results, "egemaps_missing": egemaps_missing}
    np.savez(out / "embeddings.npz", X=embedding, X_speaker_norm=speaker_normalise(embedding, speakers),
             files=np.array([str(f) for f in files]), speakers=speakers)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (out / "report.md").write_text(recordings_report(metrics))
    return metrics


def protocol(model_dir: str, folds: str = "contiguous") -> dict:
    """Which actors the model trained on, and so which fold numbers are transductive."""
    path = Path(model_dir) / "metrics.json"
    trained = json.loads(path.read_text()).get("train_actors") if path.is_file() else None
    if trained is None:
        return {"train_actors": None, "transductive_folds": None,
                "note": "training actors unknown (no metrics.json): treat the fold numbers as transductive"}
    transductive = [k for k in range(NUM_FOLDS) if set(fold_actors(k, folds)) & set(trained)]
    note = (f"the model was trained on actors {min(trained)}-{max(trained)}; folds {transductive} of the {folds} fold set test "
            "actors it saw in training, so the 6-fold numbers are transductive; the strict number comes from --cv-train")
    if json.loads((Path(model_dir) / "config.json").read_text())["model_type"] == "semisupervised_vae":
        note += (". This model also used the emotion labels of training actors, so on those folds its numbers are "
                 "not speaker-independent at all: only the research-split column (actors 23-24, unseen) is honest")
    return {"train_actors": trained, "folds": folds, "transductive_folds": transductive, "note": note}


def evaluate_model(model_dir: str, dataset_dir: Path, out: Path, args, utterances: Optional[Utterances] = None) -> dict:
    """Everything for one trained model, next to the baselines; writes figures, audio and the report."""
    model = load_model(model_dir, args.segment_hop)
    params = dataset_params(dataset_dir, ["mel"])
    if model.config.n_mels != params["mel"]["n_mels"]:
        raise SystemExit(f"error: {model_dir} expects {model.config.n_mels} mel bands, {dataset_dir} holds {params['mel']['n_mels']}")
    utterances = utterances or Utterances.from_dataset(load_all("mel", dataset_dir))
    view = utterances.model_view(model.config.input_normalization)
    start = time.perf_counter()
    representations = model_representations(model, view)
    references, egemaps_missing = baselines(utterances, dataset_dir)
    results = {name: assess(probed(x, utterances, args), utterances, args.seed, args.folds)
               for name, x in {**representations, **references}.items()}
    headline = next(iter(representations))
    x = representations[headline]
    metrics = {
        "model": str(model_dir), "model_type": model.config.model_type, "headline": headline, "seed": args.seed, "folds": args.folds,
        "speaker_norm": args.speaker_norm, "input_normalization": model.config.input_normalization,
        "representations": {k: {**v, "kind": "model" if k in representations else "baseline"} for k, v in results.items()},
        "egemaps_missing": egemaps_missing,
        "reconstruction": reconstruction_metrics(model, utterances, view, np.isin(utterances.actor, HELD_OUT)),
        "conversion": conversion(model, view, x, references["log_mel_mean_std"], out, args),
        "protocol": protocol(model_dir, args.folds),
    }
    figures(model, utterances, view, x, results[headline], out, args)
    metrics["seconds"] = time.perf_counter() - start
    if args.export_embeddings:
        np.savez(args.export_embeddings, X=x, files=np.array(utterances.file))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    write_report(metrics, out / "report.md")
    return metrics


def evaluate_baselines(dataset_dir: Path, out: Path, args) -> dict:
    """The baselines alone, without a model (`--baselines`): metrics.json and baselines.md in ``out``."""
    utterances = Utterances.from_dataset(load_all("mel", dataset_dir))
    references, egemaps_missing = baselines(utterances, dataset_dir)
    metrics = {"dataset": str(dataset_dir), "seed": args.seed, "folds": args.folds, "speaker_norm": args.speaker_norm,
               "representations": {name: {**assess(probed(x, utterances, args), utterances, args.seed, args.folds), "kind": "baseline"}
                                   for name, x in references.items()},
               "egemaps_missing": egemaps_missing}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (out / "baselines.md").write_text(results_table(metrics) + (f"\n\neGeMAPS not computed: {egemaps_missing}\n" if egemaps_missing else "\n"))
    return metrics


def probed(x: np.ndarray, utterances: Utterances, args) -> np.ndarray:
    """What the probes see: the representation, standardised per speaker with ``--speaker-norm``."""
    return speaker_normalise(x, utterances.actor) if args.speaker_norm else x


def cross_validate(recipe: str, dataset_dir: Path, out: Path, args) -> dict:
    """The strict protocol: per fold, train on the other 20 actors with ``recipe``, probe the held-out 4.

    With ``--reuse-fold-models`` a fold whose model folder already holds trained weights is probed
    again (for example with ``--speaker-norm``) instead of trained again."""
    import train

    utterances = Utterances.from_dataset(load_all("mel", dataset_dir))
    baseline = log_mel_statistics(utterances.log_mel) if args.conversion else None
    start, folds = time.perf_counter(), []
    for fold in range(NUM_FOLDS):
        fold_dir = out / f"fold_{fold}"
        fit, test = fold_masks(utterances.actor, fold, args.folds)
        if not test.any():  # a partial corpus such as the sample
            print(f"fold {fold}: no utterances of actors {fold_actors(fold, args.folds)}; skipped", flush=True)
            continue
        if not (args.reuse_fold_models and (fold_dir / "model" / "model.safetensors").is_file()):
            train.main([recipe, "--dataset_dir", str(dataset_dir), "--output_dir", str(fold_dir / "model"),
                        "--fold", str(fold), "--folds", args.folds, "--seed", str(args.seed), *(["--verbose"] if args.verbose else []),
                        *args.train_args])
        model = load_model(str(fold_dir / "model"), args.segment_hop)
        view = utterances.model_view(model.config.input_normalization)
        embedding = next(iter(model_representations(model, view).values()))
        x = probed(embedding, utterances, args)
        scores = probe_scores(x[fit], utterances.emotion[fit], x[test], utterances.emotion[test], args.seed)
        unseen = unseen_sentence_scores(x, utterances, fit, test, args.seed)
        folds.append({"fold": fold, "held_out": list(fold_actors(fold, args.folds)), **scores,
                      **({"unseen_sentence_uar": unseen["uar"]} if unseen else {}), **speaker_leakage(x, utterances, args.seed, args.folds)})
        print(f"fold {fold} (actors {fold_actors(fold, args.folds)}): UAR {scores['uar']:.3f}"
              + (f", unseen sentence {unseen['uar']:.3f}" if unseen else "") + f", actor-ID {folds[-1]['actor_id_accuracy']:.3f}", flush=True)
        if args.conversion:
            folds[-1]["conversion"] = conversion(model, view, embedding, baseline, fold_dir, args, fold, args.folds)
            print(f"fold {fold} conversion: " + ", ".join(f"{k} {v:.3f}" for k, v in conversion_rates([folds[-1]]).items()), flush=True)
    summary = {k: {"mean": float(np.mean([f[k] for f in folds])), "sd": float(np.std([f[k] for f in folds]))}
               for k in ("uar", "accuracy", "macro_f1", "unseen_sentence_uar", "actor_id_accuracy", "gender_accuracy")
               if all(k in f for f in folds)}
    result = {"recipe": recipe, "protocol": "strict: each fold's model and probe saw only the other 20 actors", "fold_set": args.folds,
              "speaker_norm": args.speaker_norm, "segment_hop": model.config.segment_hop, "folds": folds, "summary": summary, "seconds": time.perf_counter() - start}
    if args.conversion:
        result["conversion"] = conversion_rates(folds)
        print("conversion, mean over folds: " + ", ".join(f"{k} {v:.3f}" for k, v in result["conversion"].items()))
    (out / cv_metrics_name(args.speaker_norm, args.segment_hop, args.folds)).write_text(json.dumps(result, indent=2))
    print(f"mean over folds: UAR {summary['uar']['mean']:.3f} ± {summary['uar']['sd']:.3f}, actor-ID "
          f"{summary['actor_id_accuracy']['mean']:.3f}; {result['seconds'] / 60:.1f} min")
    return result


def cv_metrics_name(speaker_norm: bool, segment_hop: Optional[int] = None, folds: str = "contiguous") -> str:
    """The file in which `cross_validate` keeps its scores: cv_metrics[_emobox][_speaker_norm][_hopH].json."""
    return ("cv_metrics" + ("" if folds == "contiguous" else f"_{folds}") + ("_speaker_norm" if speaker_norm else "")
            + (f"_hop{segment_hop}" if segment_hop else "") + ".json")


def conversion_rates(folds: list[dict]) -> dict[str, float]:
    """Each judge's hit rate on converted and on real utterances (`conversion`), averaged over ``folds``."""
    keys = [k for k in folds[0]["conversion"] if k.startswith("target_rate_") or k.endswith("_rate_on_real_utterances")]
    return {k: float(np.mean([f["conversion"][k] for f in folds if f["conversion"][k] is not None])) for k in keys}


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="trained model folder or hub id")
    parser.add_argument("--dataset", type=Path, default=Path("ravdess_dataset"), help="prepared dataset folder")
    parser.add_argument("--output", type=Path, default=None, help="report folder (default: <model>/eval)")
    parser.add_argument("--seed", type=int, default=0, help="seed of probes, projections and sampling")
    parser.add_argument("--num-audio", type=int, default=3, help="utterances resynthesised to WAV")
    parser.add_argument("--export-embeddings", type=Path, default=None, help="write X (n, d) and files (n,) to this .npz")
    parser.add_argument("--audio", nargs="+", default=None, help="embed these files/folders instead of the dataset")
    parser.add_argument("--baselines", action="store_true",
                        help="probe the baselines alone (log-mel statistics, Resemblyzer, eGeMAPS, eGeMAPS + Resemblyzer), no model")
    parser.add_argument("--metadata", type=Path, default=None,
                        help="your own recordings (also --audio FILE.csv): a CSV file,speaker[,emotion] (see experiments/recordings.py); embeddings "
                             "standardised per speaker and, with emotions, probed leave-one-speaker-out beside the baselines")
    parser.add_argument("--cv-train", metavar="RECIPE", default=None, help="strict protocol: train per fold with this recipe")
    parser.add_argument("--speaker-norm", action="store_true",
                        help="standardise every representation per speaker (leave-one-out statistics of the same actor's other utterances; no labels)")
    parser.add_argument("--reuse-fold-models", action="store_true", help="with --cv-train: probe fold models already trained in --output")
    parser.add_argument("--segment-hop", type=int, default=None,
                        help="embed utterances from a segment every H frames instead of the model's segment_hop (with --cv-train: cv_metrics*_hopH.json)")
    parser.add_argument("--conversion", action="store_true",
                        help="with --cv-train: also convert each fold's held-out neutral utterances with that fold's model (strict conversion rates)")
    parser.add_argument("--folds", choices=sorted(FOLDS), default="contiguous",
                        help="the six speaker-independent folds: contiguous (actors 1-4, 5-8, ...) or emobox (EmoBox's assignment)")
    parser.add_argument("--verbose", action="store_true", help="print every INFO line and the libraries' progress bars")
    parser.add_argument("--train-args", nargs=argparse.REMAINDER, default=[], help="extra train.py options for --cv-train (last)")
    args = parser.parse_args(argv)
    configure_console(args.verbose)
    torch.manual_seed(args.seed)
    if args.cv_train:
        out = args.output or Path("eval") / Path(args.cv_train).stem
        out.mkdir(parents=True, exist_ok=True)
        cross_validate(args.cv_train, args.dataset, out, args)
        return
    if args.baselines:
        out = args.output or Path("eval") / "baselines"
        out.mkdir(parents=True, exist_ok=True)
        metrics = evaluate_baselines(args.dataset, out, args)
        print(results_table(metrics) + (f"\neGeMAPS not computed: {metrics['egemaps_missing']}" if metrics["egemaps_missing"] else ""))
        print(f"metrics.json and baselines.md in {out}")
        return
    if not args.model:
        parser.error("--model is required (or --cv-train RECIPE, or --baselines)")
    if args.audio and len(args.audio) == 1 and args.audio[0].endswith(".csv"):  # --audio recordings.csv
        args.metadata = Path(args.audio[0])
    if args.metadata:
        out = args.output or Path(args.model) / "eval_recordings"
        out.mkdir(parents=True, exist_ok=True)
        metrics = evaluate_recordings(args.model, args.metadata, out, args)
        print(recordings_table(metrics))
        print(f"report, metrics.json and embeddings.npz in {out}")
        return
    if args.audio:
        model = load_model(args.model, args.segment_hop)
        files = audio_files(args.audio)
        x = embed_audio_files(model, load_feature_extractor(args.model, model), files)
        target = args.export_embeddings or Path("embeddings.npz")
        np.savez(target, X=x, files=np.array([f.stem for f in files]))
        print(f"{len(files)} embeddings of size {x.shape[1]} in {target}")
        return
    out = args.output or Path(args.model) / "eval"
    out.mkdir(parents=True, exist_ok=True)
    metrics = evaluate_model(args.model, args.dataset, out, args)
    print(results_table(metrics))
    print(f"report: {out / 'report.md'}\nfigures: {out / 'figures'}\naudio: {out / 'audio'}")


if __name__ == "__main__":
    main(sys.argv[1:])
