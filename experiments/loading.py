"""Trained models and their front ends, from a local folder or the hub."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from transformers import AutoFeatureExtractor, AutoModel

import modeling  # registers the families with AutoModel and their feature extractor

from .errors import CommandError


def load_model(name: str):
    """A model folder or hub id, in evaluation mode; this project's families load with or without remote code.
    Anything else (another kind of model) is a `CommandError`."""
    model = AutoModel.from_pretrained(name, trust_remote_code=True).eval()
    if not hasattr(model, "embed_utterance"):
        raise CommandError(f"{name} is a {type(model).__name__}, not one of this project's VAE families")
    return model


def training_actors(model_dir) -> Optional[list[int]]:
    """The actors a local model trained on, as train.py's ``metrics.json`` records them; None where there is no such
    record (a training that did not finish, or a model from elsewhere)."""
    path = Path(model_dir) / "metrics.json"
    return json.loads(path.read_text()).get("train_actors") if path.is_file() else None


def load_feature_extractor(name: str, model) -> "modeling.RavdessFeatureExtractor":
    """The model's saved feature extractor; for a local model saved before models carried one, the same
    extractor built from its config's feature parameters."""
    folder = Path(name)
    if folder.is_dir() and not (folder / "preprocessor_config.json").is_file():
        return modeling.RavdessFeatureExtractor.from_model_config(model.config)
    return AutoFeatureExtractor.from_pretrained(name, trust_remote_code=True)
