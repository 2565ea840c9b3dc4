"""Full-corpus checks; they run only where the real RAVDESS speech set is present."""
import os
from collections import Counter
from pathlib import Path

import pytest
from datasets import load_dataset

from ravdess_dataset.prepare import PrepareConfig, prepare

REAL_DIR = Path(os.environ.get("RAVDESS_DIR", Path(__file__).resolve().parents[2] / "shared" / "ravdess"))

pytestmark = [
    pytest.mark.real_data,
    pytest.mark.skipif(not (REAL_DIR / "Actor_24").is_dir(), reason=f"no RAVDESS corpus at {REAL_DIR}"),
]


@pytest.fixture(scope="module")
def real_prepared(tmp_path_factory):
    base = tmp_path_factory.mktemp("real")
    config = PrepareConfig(source=str(REAL_DIR), output_dir=base / "dataset", cache_dir=base / "cache",
                           configs=("mel",))
    return config, prepare(config)


def test_full_corpus_counts(real_prepared):
    config, report = real_prepared
    assert report.rows["mel"] == {"train": 1200, "validation": 120, "test": 120}
    ds = load_dataset(str(config.output_dir), "mel").remove_columns(["log_mel", "embedding"])
    names = ds["train"].features["actor"].names
    per_actor = Counter(names[a] for split in ds.values() for a in split["actor"])
    assert set(per_actor.values()) == {60} and len(per_actor) == 24
    emotion_names = ds["train"].features["emotion"].names
    per_emotion = Counter(emotion_names[e] for split in ds.values() for e in split["emotion"])
    assert per_emotion.pop("neutral") == 96
    assert set(per_emotion.values()) == {192} and len(per_emotion) == 7


def test_feature_extractor_matches_prepare_on_real_files(real_prepared):
    """The extractor saved with every model, on real recordings (a stereo one among them): the log-mels and
    voice embeddings that prepare stored, to float32 rounding."""
    import dataclasses

    import numpy as np

    from ravdess_dataset.feature_extraction import RavdessFeatureExtractor

    config, _ = real_prepared
    files = [REAL_DIR / "Actor_01" / "03-01-02-01-01-02-01.flac", REAL_DIR / "Actor_20" / "03-01-03-01-02-01-20.flac",
             REAL_DIR / "Actor_24" / "03-01-08-02-02-02-24.flac"]  # the second is stereo
    extractor = RavdessFeatureExtractor(audio=dataclasses.asdict(config.audio), mel=dataclasses.asdict(config.mel),
                                        speaker_embedding=True)
    out = extractor([str(f) for f in files])
    ds = load_dataset(str(config.output_dir), "mel")
    rows = {r["file"]: r for split in ds.values() for r in split.filter(lambda f: f in {p.stem for p in files}, input_columns="file").with_format("numpy")}
    for f, log_mel, embedding in zip(files, out["log_mel"], out["speaker_embedding"]):
        np.testing.assert_allclose(log_mel, rows[f.stem]["log_mel"], rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(embedding, rows[f.stem]["embedding"], atol=1e-5)
