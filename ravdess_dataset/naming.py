"""The RAVDESS file-name grammar: ``MM-VV-EE-II-SS-RR-AA`` parsed into typed ids.

Parsing of names is kept apart from reading bytes: nothing here touches a file.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Union

MODALITIES = ("full-AV", "video-only", "audio-only")
VOCAL_CHANNELS = ("speech", "song")
EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
INTENSITIES = ("normal", "strong")
STATEMENTS = ("Kids are talking by the door", "Dogs are sitting by the door")
STATEMENT_NAMES = ("kids", "dogs")
GENDERS = ("male", "female")
NUM_ACTORS = 24

# Field name -> number of allowed codes (codes run 1..n).
_FIELD_RANGES = (
    ("modality", len(MODALITIES)),
    ("vocal_channel", len(VOCAL_CHANNELS)),
    ("emotion", len(EMOTIONS)),
    ("intensity", len(INTENSITIES)),
    ("statement", len(STATEMENTS)),
    ("repetition", 2),
    ("actor", NUM_ACTORS),
)


class RavdessNameError(ValueError):
    """A file name that is not a valid RAVDESS id; the message names the file and the field."""


@dataclasses.dataclass(frozen=True, order=True)
class RavdessId:
    """The seven numeric codes of a RAVDESS file name (all 1-based, as in the name)."""

    modality: int
    vocal_channel: int
    emotion: int
    intensity: int
    statement: int
    repetition: int
    actor: int

    def __post_init__(self) -> None:
        for name, n in _FIELD_RANGES:
            value = getattr(self, name)
            if not isinstance(value, int) or not 1 <= value <= n:
                raise RavdessNameError(f"{self.stem_unchecked()}: field '{name}' must be 01..{n:02d}, got {value!r}")
        if self.emotion == 1 and self.intensity == 2:
            raise RavdessNameError(f"{self.stem_unchecked()}: field 'intensity': neutral has no strong intensity")

    def stem_unchecked(self) -> str:
        return "-".join(f"{getattr(self, f.name)!s:0>2}" for f in dataclasses.fields(self))

    @property
    def stem(self) -> str:
        """The canonical name without extension, e.g. ``03-01-05-02-01-02-12``."""
        return "-".join(f"{getattr(self, f.name):02d}" for f in dataclasses.fields(self))

    @property
    def gender(self) -> str:
        """``male`` for odd actors, ``female`` for even ones."""
        return GENDERS[(self.actor + 1) % 2]

    @property
    def is_audio_speech(self) -> bool:
        """True for the audio-only speech files (modality 03, vocal channel 01)."""
        return self.modality == 3 and self.vocal_channel == 1

    def labels(self) -> dict[str, Union[int, str]]:
        """0-based class indices of every categorical field, as stored in the dataset."""
        return {
            "modality": self.modality - 1,
            "vocal_channel": self.vocal_channel - 1,
            "emotion": self.emotion - 1,
            "intensity": self.intensity - 1,
            "statement": self.statement - 1,
            "repetition": self.repetition - 1,
            "actor": self.actor - 1,
            "gender": GENDERS.index(self.gender),
        }

    @classmethod
    def parse(cls, name: Union[str, Path]) -> "RavdessId":
        """Parse a file name or path (any extension); raise `RavdessNameError` naming the field."""
        stem = Path(name).name.split(".")[0]
        parts = stem.split("-")
        if len(parts) != len(_FIELD_RANGES):
            raise RavdessNameError(f"{name}: expected 7 fields MM-VV-EE-II-SS-RR-AA, got {len(parts)}")
        values = []
        for part, (field, _) in zip(parts, _FIELD_RANGES):
            if len(part) != 2 or not part.isdigit():
                raise RavdessNameError(f"{name}: field '{field}' must be two digits, got {part!r}")
            values.append(int(part))
        try:
            return cls(*values)
        except RavdessNameError as err:
            raise RavdessNameError(f"{name}: {str(err).split(': ', 1)[1]}") from None
