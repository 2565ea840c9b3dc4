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
