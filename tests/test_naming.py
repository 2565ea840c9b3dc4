import pytest

from ravdess_dataset.naming import RavdessId, RavdessNameError


def test_parse_and_format_round_trip():
    rid = RavdessId.parse("Actor_12/03-01-05-02-01-02-12.wav")
    assert rid == RavdessId(3, 1, 5, 2, 1, 2, 12)
    assert rid.stem == "03-01-05-02-01-02-12"
    assert RavdessId.parse(rid.stem + ".flac") == rid
    assert rid.gender == "female" and RavdessId(3, 1, 1, 1, 1, 1, 7).gender == "male"
    assert rid.is_audio_speech and not RavdessId(3, 2, 1, 1, 1, 1, 7).is_audio_speech
    assert rid.labels() == {"modality": 2, "vocal_channel": 0, "emotion": 4, "intensity": 1, "statement": 0,
                            "repetition": 1, "actor": 11, "gender": 1}


@pytest.mark.parametrize(
    "name, field",
    [
        ("03-01-05-02-01-02.wav", "7 fields"),
        ("03-01-05-02-01-02-12-01.wav", "7 fields"),
        ("04-01-05-02-01-02-12.wav", "modality"),
        ("03-03-05-02-01-02-12.wav", "vocal_channel"),
        ("03-01-09-02-01-02-12.wav", "emotion"),
        ("03-01-00-02-01-02-12.wav", "emotion"),
        ("03-01-05-03-01-02-12.wav", "intensity"),
        ("03-01-05-02-03-02-12.wav", "statement"),
        ("03-01-05-02-01-03-12.wav", "repetition"),
        ("03-01-05-02-01-02-25.wav", "actor"),
        ("03-01-05-02-01-02-1a.wav", "actor"),
        ("03-01-01-02-01-02-12.wav", "neutral has no strong"),
    ],
)
def test_invalid_names_name_the_file_and_field(name, field):
    with pytest.raises(RavdessNameError) as err:
        RavdessId.parse(f"Actor_12/{name}")
    assert name in str(err.value) and field in str(err.value)
