"""``report.md`` from evaluate.py's metrics; push_to_hub.py reuses its tables for the model card."""
from __future__ import annotations

from pathlib import Path


def protocol_text(metrics: dict) -> str:
    """Which actors the numbers are fair for, and whether the representations were speaker-normalised."""
    text = f"{metrics['protocol']['note']}."
    if metrics.get("speaker_norm"):
        text += (" Every representation below is standardised per speaker (`--speaker-norm`): each utterance by "
                 "the mean and std of the same actor's other utterances, which needs no labels.")
    return text


def results_table(metrics: dict) -> str:
    """Markdown table: every representation (model and baselines) on the same folds."""
    rows = ["| representation | kind | dim | UAR, 6 folds (mean ± sd) | WA | macro-F1 | UAR, research split (23-24) | actor-ID acc. | gender acc. |",
            "|---|---|---|---|---|---|---|---|---|"]
    for name, r in metrics["representations"].items():
        folds, leak, research = r["emotion"]["folds"], r["leakage"], r["emotion"]["research_split"]
        rows.append(f"| {name} | {r['kind']} | {r['dim']} | {_mean_sd(folds, 'uar')} ({len(r['emotion']['per_fold'])} folds) | "
                    f"{_mean_sd(folds, 'accuracy')} | {_mean_sd(folds, 'macro_f1')} | {_number(research and research['uar'])} | "
                    f"{_number(leak['actor_id_accuracy'])} | {_number(leak['gender_accuracy'])} |")
    return "\n".join(rows)


def _number(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _mean_sd(folds: dict, key: str) -> str:
    return f"{folds[key]['mean']:.3f} ± {folds[key]['sd']:.3f}" if key in folds else "n/a"


def write_report(metrics: dict, path: Path) -> None:
    """A readable report of one evaluate.py run."""
    recon, conv = metrics["reconstruction"], metrics["conversion"]
    text = f"""# Evaluation of `{metrics['model']}` ({metrics['model_type']})

Probe: standardised logistic regression, 8 emotions (chance 0.125). Folds: 6 speaker-independent
folds of 4 held-out actors (1-4, 5-8, ..., 21-24). UAR = unweighted (balanced) accuracy, WA = accuracy.
Actor-ID: fit on repetition 1, test on repetition 2 (lower = less speaker information).

**Protocol:** {protocol_text(metrics)}

{results_table(metrics)}

## Reconstruction (held-out actors 21-24, {recon['utterances']} utterances)

- mean squared error: {recon['mse_db2']:.2f} dB²
- log-spectral distance: {recon['log_spectral_distance_db']:.2f} dB

## Emotion conversion

{conv['conversions']} conversions (each held-out neutral utterance to the 7 other emotions), its latent moved by
{conv.get('strength', 1.0):g} x (mean latent of the target emotion - that of neutral) over actors 1-20 (the strength
chosen among {', '.join(conv.get('strength_rates_on_training_actors', {})) or 'n/a'} on conversions of actors 1, 6, 11 and 16, judged by the
log-mel probe of the other training actors); the change this makes to the decoder's output is added to the
utterance, and the result re-scored by probes fitted on actors 1-20:

| probe | converted utterances given the target emotion | real utterances of those emotions, same held-out actors |
|---|---|---|
| on the model's embedding | {_number(conv.get('target_rate_model_probe'))} | {_number(conv.get('model_probe_rate_on_real_utterances'))} |
| on log-mel statistics (independent of the model) | {_number(conv.get('target_rate_log_mel_probe'))} | {_number(conv.get('log_mel_probe_rate_on_real_utterances'))} |
| on log-mel statistics standardised per speaker | {_number(conv.get('target_rate_log_mel_probe_speaker_norm'))} | {_number(conv.get('log_mel_probe_speaker_norm_rate_on_real_utterances'))} |

Chance is 0.125. The first probe reads the latent space that the conversion moved (for semisupervised_vae it includes
the model's own classifier), so it is an optimistic judge; the log-mel probes are independent of the model.

## Figures and audio

![projection](figures/projection.png)
![confusion](figures/confusion.png)
![reconstructions](figures/reconstructions.png)
![traversals](figures/traversals.png)

Audio (Griffin-Lim, the dataset's mel parameters) in `audio/`. Seed {metrics['seed']}; {metrics['seconds']:.0f} s.
"""
    path.write_text(text)
