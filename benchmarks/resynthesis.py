"""What resynthesis keeps of real speech, as the conversion judge hears it with `--conversion-audio griffin-lim` or
`--conversion-audio world`.

    python benchmarks/resynthesis.py <dataset> [--audio griffin-lim|world] [--every 10] [--json out.json]

The conversion judge reads eGeMAPS from conversions made audible (`experiments.conversion.heard_waveform`), and it
recognises real utterances made audible without a change less often than as recorded: by Griffin-Lim from their
log-mels (`griffin_lim_bytes`) far less, by the WORLD vocoder from their recordings (`WorldAnalysis`) somewhat less.
This measures, on every ``--every``-th utterance of a prepared dataset (with its ``audio`` config), where the two
differ: the pitch contour (pyin prosody frames of both, on the frames voiced in both) and the 88 eGeMAPS functionals
grouped by what they describe, each functional's change in units of its spread over the utterances measured (for the
ten that move most, also the signed change and the share of utterances it raises).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ravdess_dataset.atomic import write_atomic  # noqa: E402

GROUPS = {  # eGeMAPSv02 functional name prefixes
    "pitch (F0 semitone)": ("F0semitone",),
    "loudness": ("loudness",),
    "jitter, shimmer, HNR": ("jitter", "shimmer", "HNRdBACF"),
    "formants": ("F1", "F2", "F3"),
    "spectral shape (alpha, Hammarberg, slopes, MFCC, H1-H2, H1-A3)": ("alphaRatio", "hammarberg", "slope", "mfcc",
                                                                      "logRelF0"),
    "rates and segment lengths": ("loudnessPeaksPerSec", "VoicedSegments", "MeanVoicedSegment", "StddevVoiced",
                                  "MeanUnvoiced", "StddevUnvoiced", "equivalentSoundLevel"),
}


def group_of(name: str) -> str:
    """The `GROUPS` entry of an eGeMAPS functional (the longest prefix that matches)."""
    matches = [(len(p), g) for g, prefixes in GROUPS.items() for p in prefixes if name.startswith(p)]
    return max(matches)[1] if matches else "other"


def main(argv: Optional[list[str]] = None) -> None:
    from experiments.conversion import ConversionAudio, griffin_lim_bytes, heard_waveform, wav_bytes
    from experiments.data import dataset_params
    from ravdess_dataset import egemaps
    from ravdess_dataset.audio import AudioConfig
    from ravdess_dataset.derived import dataset_prosody
    from ravdess_dataset.features import MelConfig
    from ravdess_dataset.front_end import prosody_of
    from ravdess_dataset.splits import load_all

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", type=Path, help="prepared dataset folder (configs mel and audio)")
    parser.add_argument("--audio", choices=["griffin-lim", "world"], default="griffin-lim",
                        help="griffin-lim: from the log-mel; world: the recording through WORLD, unchanged (the world extra)")
    parser.add_argument("--every", type=int, default=10, help="measure every n-th utterance (default 10: 144 of 1440)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)

    params = dataset_params(args.dataset, ["mel", "audio"])
    mel = load_all("mel", args.dataset).with_format("numpy")
    rows = range(0, len(mel), args.every)
    files = [mel[i]["file"] for i in rows]
    original_prosody = dataset_prosody(args.dataset, files)
    original = egemaps.dataset_egemaps(args.dataset, files)
    audio, mel_config = AudioConfig(**params["audio"]), MelConfig(**params["mel"])
    world = ConversionAudio.load(args.dataset, files, "world") if args.audio == "world" else None
    start, resynthesised, pitch_errors, voiced = time.time(), [], [], []
    for k, (i, prosody) in enumerate(zip(rows, original_prosody)):
        made = (wav_bytes(world.world_analysis(k, params).synthesise(), mel_config.sample_rate) if world is not None
                else griffin_lim_bytes(mel[i]["log_mel"], params["mel"]))
        wav = heard_waveform(made, params)
        resynthesised.append(egemaps.egemaps_functionals(wav, audio.sample_rate))
        again = prosody_of(wav, audio, mel_config)
        n = min(len(again), len(prosody))
        both = (prosody[:n, 1] > 0.5) & (again[:n, 1] > 0.5)
        voiced.append(((prosody[:, 1] > 0.5).mean(), (again[:, 1] > 0.5).mean()))
        if both.any():
            pitch_errors.append(float(np.median(np.abs(again[:n, 0] - prosody[:n, 0])[both])))
    resynthesised = np.stack(resynthesised)
    spread = original.std(0) + 1e-9
    change = np.abs(resynthesised - original).mean(0) / spread  # per functional, in units of its spread
    signed, up = (resynthesised - original).mean(0) / spread, (resynthesised > original).mean(0)  # and which way
    names = egemaps.feature_names()
    groups = {}
    for name, value in zip(names, change):
        groups.setdefault(group_of(name), []).append(float(value))
    voiced = np.array(voiced)
    results = {
        "audio": args.audio, "utterances": len(files), "seconds": round(time.time() - start, 1),
        "pitch_error_semitones_median": float(np.median(pitch_errors)),
        "pitch_error_semitones_90th_percentile": float(np.percentile(pitch_errors, 90)),
        "voiced_share_original": float(voiced[:, 0].mean()), "voiced_share_resynthesised": float(voiced[:, 1].mean()),
        "egemaps_change_in_spreads_by_group": {g: {"functionals": len(v), "mean": float(np.mean(v))} for g, v in sorted(groups.items())},
        "largest_changes": {names[k]: {"mean_abs_change_in_spreads": float(change[k]),
                                       "mean_signed_change_in_spreads": float(signed[k]),
                                       "share_moved_up": float(up[k])} for k in np.argsort(change)[::-1][:10]},
    }
    print(json.dumps(results, indent=2))
    if args.json:
        write_atomic(args.json, json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    from experiments.errors import run_command

    run_command(main)
