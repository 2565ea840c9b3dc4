"""push_to_hub.py without the network: dry run, a real HTTP upload to a local stand-in, error paths."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from huggingface_hub import ModelCard

from tests.hub_standin import HubStandIn


@pytest.fixture(scope="module")
def model_dir(tiny_model):
    return tiny_model[1]


def run_push(args, env_extra=None):
    """push_to_hub.py in a subprocess (huggingface_hub reads HF_ENDPOINT at import)."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HF_ENDPOINT")}
    env.update({"HF_HOME": env.get("PYTEST_HF_HOME", "/nonexistent-hf-home"), "HF_HUB_DISABLE_TELEMETRY": "1", **(env_extra or {})})
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return subprocess.run([sys.executable, "push_to_hub.py", *args], cwd=root, env=env, capture_output=True, text=True, timeout=300)


def test_dry_run_folder_loads_without_the_project(model_dir, prepared, tmp_path):
    result = run_push(["--model", str(model_dir), "--repo-id", "tester/emo-vae", "--dry-run", str(tmp_path / "staged")])
    assert result.returncode == 0, result.stderr
    staged = tmp_path / "staged"
    card = ModelCard.load(staged / "README.md")
    assert card.data.library_name == "transformers" and card.data.license == "cc-by-nc-sa-4.0"
    assert "has not been evaluated" in card.text and "model-index" not in (staged / "README.md").read_text()
    from datasets import load_dataset
    mel = load_dataset(str(prepared[0].output_dir), "mel")["validation"].with_format("numpy")[0]
    np.save(tmp_path / "log_mel.npy", mel["log_mel"])
    np.save(tmp_path / "speaker.npy", mel["embedding"])
    from transformers import AutoModel
    import modeling  # noqa: F401
    expected = AutoModel.from_pretrained(model_dir).eval().embed_utterance(mel["log_mel"], mel["embedding"]).numpy()
    script = textwrap.dedent(f"""
        import numpy as np
        from transformers import AutoModel
        model = AutoModel.from_pretrained({str(staged)!r}, trust_remote_code=True).eval()
        assert type(model).__module__.startswith("transformers_modules")
        x = model.embed_utterance(np.load({str(tmp_path / 'log_mel.npy')!r}), np.load({str(tmp_path / 'speaker.npy')!r}))
        np.save({str(tmp_path / 'remote.npy')!r}, x.numpy())
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["HF_MODULES_CACHE"] = str(tmp_path / "modules")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    np.testing.assert_array_equal(np.load(tmp_path / "remote.npy"), expected)


def test_upload_over_http_arrives_byte_identical(model_dir, prepared, tmp_path):
    staged = tmp_path / "staged"
    assert run_push(["--model", str(model_dir), "--repo-id", "tester/emo-vae", "--dry-run", str(staged)]).returncode == 0
    with HubStandIn() as hub:
        env = {"HF_ENDPOINT": hub.url, "HF_TOKEN": "hf_good"}
        first = run_push(["--model", str(model_dir), "--repo-id", "tester/emo-vae"], env)
        assert first.returncode == 0, first.stderr[-2000:]
        second = run_push(["--model", str(model_dir), "--repo-id", "tester/emo-vae", "--commit-message", "again"], env)
        assert second.returncode == 0, second.stderr[-2000:]  # an existing repo gets a new commit
        files = hub.repos["models/tester/emo-vae"]
        assert [c[2] for c in hub.commits] == ["Upload model with push_to_hub.py", "again"]
        dataset = run_push(["--dataset", str(prepared[0].output_dir), "--repo-id", "tester/ravdess"], env)
        assert dataset.returncode == 0, dataset.stderr[-2000:]
        dataset_files = hub.repos["datasets/tester/ravdess"]
        assert len(hub.validated_yaml) >= 3 and "cc-by-nc-sa-4.0" in hub.validated_yaml[0]
    local = {str(p.relative_to(staged)): p.read_bytes() for p in staged.rglob("*") if p.is_file()}
    assert files == local
    assert ModelCard(files["README.md"].decode()).data.license == "cc-by-nc-sa-4.0"
    data_dir = prepared[0].output_dir
    expected = {str(p.relative_to(data_dir)) for p in (data_dir / "data").rglob("*") if p.is_file()} | {"README.md"}
    assert set(dataset_files) == expected


def test_error_paths_give_one_clear_message(model_dir, tmp_path):
    no_token = run_push(["--model", str(model_dir), "--repo-id", "tester/x"])
    assert no_token.returncode == 2 and "no hub token" in no_token.stderr and "Traceback" not in no_token.stderr
    down = run_push(["--model", str(model_dir), "--repo-id", "tester/x"], {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_TOKEN": "hf_good"})
    assert down.returncode == 2 and "cannot reach the hub" in down.stderr and "Traceback" not in down.stderr
    with HubStandIn() as hub:
        refused = run_push(["--model", str(model_dir), "--repo-id", "tester/x"], {"HF_ENDPOINT": hub.url, "HF_TOKEN": "hf_readonly"})
    assert refused.returncode == 2 and "HTTP 403" in refused.stderr and "Traceback" not in refused.stderr
    not_a_model = run_push(["--model", str(tmp_path), "--repo-id", "tester/x", "--dry-run", str(tmp_path / "o")])
    assert not_a_model.returncode == 2 and "not a saved model" in not_a_model.stderr


def test_card_of_a_speaker_input_model_says_how_to_standardise(speaker_input_model, model_dir):
    from push_to_hub import render_model_card

    step = "log_mel = (log_mel - others.mean(0)) / others.std(0)"
    card = render_model_card(speaker_input_model[1], "tester/emo-vae", None, None)
    assert "standardised per band with the mean and std of its speaker's other recordings" in card and step in card
    assert step not in render_model_card(model_dir, "tester/emo-vae", None, None)
