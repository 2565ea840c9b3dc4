"""Measure the ``audio`` config: its size on disk and how closely its FLAC files hold the cached waveforms.

    python benchmarks/audio_config.py ../shared/ravdess --output-dir /tmp/ravdess-audio [--json out.json]

Runs ``prepare`` for the ``audio`` config (features come from the cache where it has them), then decodes every
row's FLAC bytes with soundfile (no torchcodec) and compares them with the float32 waveform in the feature cache:
the samples that differ by more than half a 24-bit step must all be beyond full scale (clipped).
"""
from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ravdess_dataset.atomic import write_atomic  # noqa: E402


def main() -> None:
    from datasets import Audio, load_dataset

    from ravdess_dataset.cache import FeatureCache, params_key
    from ravdess_dataset.prepare import PrepareConfig, prepare

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="the corpus (folder or zip), as for prepare")
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args()
    config = PrepareConfig(source=args.source, output_dir=args.output_dir, cache_dir=args.cache_dir, configs=("audio",))
    prepare(config)
    manifest = {r["file"]: r["key"] for r in _manifest(config)}
    cache = FeatureCache(config.cache_dir / "features" / params_key(config.feature_params()), params={})
    step = 2.0**-23
    sizes: dict[str, int] = {}
    for shard in sorted((args.output_dir / "data" / "audio").glob("*.parquet")):
        split = shard.name.split("-")[0]
        sizes[split] = sizes.get(split, 0) + shard.stat().st_size
    result = {"bytes_per_split": sizes, "files": 0, "samples": 0, "clipped_samples": 0, "files_with_clipping": 0, "max_error_unclipped": 0.0}
    try:
        for split in load_dataset(str(args.output_dir), "audio").values():
            for row in split.cast_column("audio", Audio(decode=False)):
                decoded, rate = sf.read(io.BytesIO(row["audio"]["bytes"]), dtype="float64")
                original = cache.get(manifest[row["file"]], ("wav",)).wav.astype(np.float64)
                clipped = np.abs(original) > 1 - step
                error = np.abs(decoded - original)
                assert rate == config.audio.sample_rate and len(decoded) == len(original), row["file"]
                result["files"] += 1
                result["samples"] += len(original)
                result["clipped_samples"] += int(clipped.sum())
                result["files_with_clipping"] += int(clipped.any())
                result["max_error_unclipped"] = max(result["max_error_unclipped"], float(error[~clipped].max(initial=0.0)))
    finally:
        cache.close()
    result["total_bytes"] = sum(result["bytes_per_split"].values())
    result["half_24_bit_step"] = step / 2
    print(json.dumps(result, indent=2))
    if args.json:
        write_atomic(args.json, json.dumps(result, indent=2))


def _manifest(config) -> list[dict]:
    """(file, content key) of every prepared utterance, as prepare computes them."""
    from ravdess_dataset.cache import content_key
    from ravdess_dataset.naming import RavdessId
    from ravdess_dataset.sources import find_audio, resolve_source

    folder = resolve_source(config.source, config.cache_dir)
    return [{"file": RavdessId.parse(p.name).stem, "key": content_key(p)} for p in find_audio(folder)]


if __name__ == "__main__":
    main()
