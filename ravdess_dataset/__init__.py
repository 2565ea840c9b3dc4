"""RAVDESS speech as a Hugging Face dataset: file-name ids, audio front end, features, builder.

`prepare` lives in :mod:`ravdess_dataset.prepare` (not re-exported, so that the module stays reachable by name).
"""
from .audio import AudioConfig, AudioReadError, load_and_preprocess
from .features import MEL_PRESETS, MelConfig, SegmentConfig, log_mel
from .naming import EMOTIONS, RavdessId, RavdessNameError
from .splits import fold_actors, load_fold

__all__ = [
    "AudioConfig", "AudioReadError", "load_and_preprocess", "MEL_PRESETS", "MelConfig", "SegmentConfig", "log_mel",
    "EMOTIONS", "RavdessId", "RavdessNameError", "fold_actors", "load_fold",
]
