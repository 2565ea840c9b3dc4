"""The feature cache: shards shared by runs on different recordings, damage told apart from refusal, old layouts."""
import errno

import h5py
import numpy as np
import pytest

from ravdess_dataset import cache as cache_module
from ravdess_dataset.cache import FeatureCache, FeatureCacheError, UtteranceFeatures, remove_earlier_layout


def features(seed: int) -> UtteranceFeatures:
    rng = np.random.default_rng(seed)
    return UtteranceFeatures(wav=rng.normal(size=800).astype(np.float32), log_mel=rng.normal(size=(5, 8)).astype(np.float32),
                             embedding=rng.normal(size=256).astype(np.float32),
                             partial_embeddings=rng.normal(size=(2, 256)).astype(np.float32), duration=1.0 + seed)


def fill(folder, keys) -> FeatureCache:
    cache = FeatureCache(folder, params={"n": 1})
    for key in keys:
        cache.put(key, features(int(key[1:])))
        cache.flush()  # a shard per entry: many shards
    return cache


def test_merging_shards_keeps_the_entries_of_other_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_module, "COMPACT_SHARDS", 2)
    first = fill(tmp_path, ["a1", "a2", "a3"])
    first.commit()
    first.close()
    second = fill(tmp_path, ["b4", "b5", "b6"])  # another corpus, same parameters
    second.commit()  # more shards than COMPACT_SHARDS, no other user: merged
    assert len(list(tmp_path.glob("*.h5"))) == 1
    second.close()
    again = FeatureCache(tmp_path, params={})
    assert len(again) == 6
    for key in ("a1", "a2", "a3", "b4", "b5", "b6"):
        np.testing.assert_array_equal(again.get(key).log_mel, features(int(key[1:])).log_mel)
    again.close()


def test_shards_are_not_merged_under_another_runs_feet(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_module, "COMPACT_SHARDS", 2)
    reader = fill(tmp_path, ["a1", "a2", "a3"])  # still open: holds the shared lock, as a prepare building configs does
    writer = fill(tmp_path, ["b4"])
    writer.commit()
    assert len(list(tmp_path.glob("*.h5"))) == 4
    np.testing.assert_array_equal(reader.get("a1").wav, features(1).wav)
    writer.close()
    reader.close()


def test_a_shard_the_system_refuses_is_an_error_and_is_kept(tmp_path, monkeypatch):
    fill(tmp_path, ["a1"]).close()
    shard = next(tmp_path.glob("*.h5"))

    def refuse(path, *args, **kwargs):
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(cache_module.h5py, "File", refuse)
    with pytest.raises(FeatureCacheError, match=f"cannot open {shard}"):
        FeatureCache(tmp_path, params={})
    assert shard.exists()


def test_a_shard_that_is_not_hdf5_is_dropped_with_a_warning(tmp_path, caplog):
    fill(tmp_path, ["a1", "a2"]).close()
    shard = sorted(tmp_path.glob("*.h5"))[0]
    shard.write_bytes(b"not an HDF5 file" * 100)
    with caplog.at_level("WARNING"):
        cache = FeatureCache(tmp_path, params={})
    assert len(cache) == 1 and not shard.exists() and f"{shard} is damaged" in caplog.text
    cache.close()


def test_the_single_file_cache_of_version_1_is_removed(tmp_path, caplog):
    features_dir = tmp_path / "features"
    (features_dir / "0123abcd").mkdir(parents=True)
    with h5py.File(features_dir / "0123abcd" / "shard.h5", "w"):
        pass
    with h5py.File(features_dir / "9f8e7d6c5b4a3210.h5", "w") as f:
        f["x"] = np.zeros(10)
    with caplog.at_level("WARNING"):
        remove_earlier_layout(features_dir)
    assert not (features_dir / "9f8e7d6c5b4a3210.h5").exists() and (features_dir / "0123abcd" / "shard.h5").exists()
    assert "a cache of an earlier version" in caplog.text
