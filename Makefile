# The two commands of the README: `make demo` (set-up + main job) and `make test` (set-up + tests).
PYTHON ?= python3
VENV ?= .venv
CONSTRAINTS ?= constraints-cpu.txt
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test clean

setup: $(STAMP)

$(STAMP): setup.cfg pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(if $(CONSTRAINTS),-c $(CONSTRAINTS)) -e '.[test,egemaps,world]'
	$(PY) -c "import webrtcvad, resemblyzer, torch, datasets, opensmile; from experiments.synthesis import import_pyworld; import_pyworld()"
	touch $(STAMP)

# the whole path on the bundled 2-actor sample, offline: prepare, a short training run, evaluate
demo: $(STAMP)
	$(PY) -m ravdess_dataset prepare sample
	$(PY) train.py configs/speech_vae.yaml --output_dir runs/demo --num_train_epochs 15 --kl_warmup_steps 20 --warmup_steps 5
	$(PY) evaluate.py --model runs/demo --output runs/demo/eval

test: $(STAMP)
	$(PY) -m pytest -q -ra

clean:
	rm -rf $(VENV) ravdess_dataset/data ravdess_dataset/README.md runs
