"""The dataset card ``README.md``: YAML ``configs:`` for `load_dataset` plus a readable card."""
from __future__ import annotations

import dataclasses
import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from .naming import EMOTIONS, RavdessId
from .splits import NUM_FOLDS, SPLIT_ACTORS, fold_actors, split_of

if TYPE_CHECKING:
    from .prepare import PrepareConfig, PrepareReport

CITATION = """@article{livingstone2018ravdess,
  title   = {The Ryerson Audio-Visual Database of Emotional Speech and Song (RAVDESS): A dynamic,
             multimodal set of facial and vocal expressions in North American English},
  author  = {Livingstone, Steven R. and Russo, Frank A.},
  journal = {PLOS ONE},
  volume  = {13},
  number  = {5},
  pages   = {e0196391},
  year    = {2018},
  doi     = {10.1371/journal.pone.0196391}
}"""

FIELDS = """| column | type | meaning |
|---|---|---|
| `file` | string | file name stem, `MM-VV-EE-II-SS-RR-AA` |
| `modality` | ClassLabel | full-AV, video-only, audio-only |
| `vocal_channel` | ClassLabel | speech, song |
| `emotion` | ClassLabel | neutral, calm, happy, sad, angry, fearful, disgust, surprised |
| `intensity` | ClassLabel | normal, strong (neutral is always normal) |
| `statement` | ClassLabel | kids ("Kids are talking by the door"), dogs ("Dogs are sitting by the door") |
| `repetition` | ClassLabel | 1, 2 |
| `actor` | ClassLabel | 01..24 (class id = actor number - 1) |
| `gender` | ClassLabel | male (odd actors), female (even actors) |
| `duration` | float32 | seconds of the original recording, before silence trimming |
| `log_mel` | Array2D float32 | `mel`: (frames, n_mels); `segments`: (segment_frames, n_mels), dB |
| `embedding` | 256 x float32 | Resemblyzer utterance embedding (L2-normalised) |
| `partial_embeddings` | Array2D float32 | `embeddings`: (windows, 256), one per 1.6 s window |
| `utterance_id`, `segment_index`, `start_frame`, `length` | `segments` | which utterance, which segment, where it starts, real (unpadded) frames |
| `audio` | struct | `audio`: `{"array": float32 list, "sampling_rate": int}` |"""


def _yaml_header(rows: dict[str, dict[str, int]], tag: str) -> str:
    meta = {
        "pretty_name": "RAVDESS speech (audio-only): log-mels, voice embeddings, segments",
        "license": "cc-by-nc-sa-4.0",
        "language": ["en"],
        "task_categories": ["audio-classification"],
        "tags": ["speech", "emotion", "speech-emotion-recognition", "ravdess"],
        "size_categories": ["1K<n<10K"],
        "configs": [
            {
                "config_name": name,
                "data_files": [{"split": split, "path": f"data/{name}/{split}-{tag}-*.parquet"} for split in rows[name]],
                **({"default": True} if name == "mel" else {}),
            }
            for name in rows
        ],
    }
    return "---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n"


def render_card(config: "PrepareConfig", report: "PrepareReport", ids: list[RavdessId]) -> str:
    """The card text for a finished `prepare` run."""
    per_split = {s: Counter(EMOTIONS[i.emotion - 1] for i in ids if split_of(i.actor) == s) for s in SPLIT_ACTORS}
    emotion_table = "| emotion | " + " | ".join(SPLIT_ACTORS) + " |\n|---|" + "---|" * len(SPLIT_ACTORS) + "\n"
    emotion_table += "\n".join(
        f"| {e} | " + " | ".join(str(per_split[s][e]) for s in SPLIT_ACTORS) + " |" for e in EMOTIONS
    )
    rows_table = "| config | " + " | ".join(SPLIT_ACTORS) + " |\n|---|" + "---|" * len(SPLIT_ACTORS) + "\n"
    rows_table += "\n".join(
        f"| `{name}` | " + " | ".join(str(r.get(s, 0)) for s in SPLIT_ACTORS) + " |" for name, r in report.rows.items()
    )
    folds = ", ".join(f"{k}: {fold_actors(k)[0]}-{fold_actors(k)[-1]}" for k in range(NUM_FOLDS))
    params = yaml.safe_dump(
        {"audio": dataclasses.asdict(config.audio), "mel": dataclasses.asdict(config.mel),
         "segment": dataclasses.asdict(config.segment)}, sort_keys=False,
    )
    return f"""{_yaml_header(report.rows, report.tag)}
# RAVDESS speech: log-mel spectrograms and voice embeddings

The audio-only speech part of the Ryerson Audio-Visual Database of Emotional Speech and Song
(RAVDESS): 24 professional actors (12 male, 12 female) speak two neutral statements in eight
emotions (neutral, calm, happy, sad, angry, fearful, disgust, surprised), at two intensities
(neutral: one), twice each. This folder holds {len(ids)} utterances, prepared by
`python -m ravdess_dataset prepare` from `{config.source}`.

```python
from datasets import load_dataset
ds = load_dataset("./ravdess_dataset", "mel")   # or "embeddings", "segments", "audio"
```

## Configs and splits
Splits are speaker-disjoint: `train` actors 01-20, `validation` 21-22, `test` 23-24 (the split
of the original research code). Rows:

{rows_table}

- `mel`: one row per utterance, the log-mel spectrogram and the Resemblyzer embedding.
- `embeddings`: one row per utterance, the utterance embedding and the per-window embeddings.
- `segments`: one row per {config.segment.frames}-frame log-mel segment (hop {config.segment.hop}
  frames) for VAE training; clips shorter than a segment are padded with the silence value
  ({config.mel.floor_db:.0f} dB) and `length` gives their real frames.
- `audio`: the preprocessed 16 kHz mono waveform as a plain struct `{{"array", "sampling_rate"}}`
  (the same access pattern as `datasets.Audio`, without needing torchcodec to decode).

Speaker-independent 6-fold cross-validation (4 held-out actors per fold; {folds}):

```python
from ravdess_dataset.splits import load_fold
fold = load_fold(0, "mel")   # DatasetDict(train=20 actors, test=actors 1-4)
```

## Fields
{FIELDS}

## Emotions per split
{emotion_table}

## Processing
Audio is decoded with soundfile, stereo files are averaged to mono, resampled with soxr,
raised to {config.audio.target_dbfs:g} dBFS when quieter, and long silences are cut with
WebRTC VAD (Resemblyzer's `preprocess_wav`, step for step). The log-mel is computed from that
waveform (resampled to the mel rate if it differs) with librosa, `power_to_db(ref=1)`.
Embeddings come from Resemblyzer's pretrained voice encoder over 1.6 s windows (rate 1.3 per
second, minimum coverage 0.75), averaged and L2-normalised. Parameters of this build:

```yaml
{params}```

## License and citation
RAVDESS is released under the Creative Commons Attribution-NonCommercial-ShareAlike 4.0
license (CC BY-NC-SA 4.0); so are these derived features. Original data: Zenodo record
1188976. Please cite:

```bibtex
{CITATION}
```
"""


def write_card(config: "PrepareConfig", report: "PrepareReport", ids: list[RavdessId]) -> Path:
    """Write ``README.md`` into the dataset folder atomically."""
    path = config.output_dir / "README.md"
    tmp = path.with_name(".README.md.tmp")
    tmp.write_text(render_card(config, report, ids))
    os.replace(tmp, path)
    return path
