"""Atomic writes (ravdess_dataset.atomic): a failed or killed writer leaves the old file or the whole new one."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ravdess_dataset.atomic import atomic_path, write_atomic

ROOT = Path(__file__).resolve().parents[1]

WRITER = """
import json, sys
from pathlib import Path
from ravdess_dataset.atomic import write_atomic
target, k = Path(sys.argv[1]), 0
while True:
    k += 1
    write_atomic(target, json.dumps({"k": k, "payload": [k] * 400_000}))
    if k == 1:
        print("first", flush=True)
"""

SLOW_WRITER = """
import json, sys, time
from pathlib import Path
from ravdess_dataset.atomic import atomic_path, write_atomic
target = Path(sys.argv[1])
write_atomic(target, json.dumps({"k": 0}))
with atomic_path(target) as tmp, open(tmp, "w") as f:
    f.write('{"k": 1, "payload": [0')
    for i in range(10**7):
        f.write(", 0")
        f.flush()
        if i == 50:
            print("writing", flush=True)
        time.sleep(0.001)
"""


def test_write_replaces_and_a_failed_block_keeps_the_old_file(tmp_path):
    target = tmp_path / "metrics.json"
    write_atomic(target, "old")
    write_atomic(target, "new")
    assert target.read_text() == "new"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".metrics.json.") and tmp.suffix == ".tmp"  # no *.json
        tmp.write_text("half of a new fi")
        raise RuntimeError("the writer fails")
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]  # the temporary file is gone


def test_sigkill_in_the_middle_of_a_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "metrics.json"
    writer = subprocess.Popen([sys.executable, "-c", SLOW_WRITER, str(target)], stdout=subprocess.PIPE,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert writer.stdout.readline().strip() == b"writing"
    time.sleep(0.1)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert json.loads(target.read_text()) == {"k": 0}
    leftover = [p for p in tmp_path.iterdir() if p != target]
    assert len(leftover) == 1 and leftover[0].name.startswith(".metrics.json.") and leftover[0].stat().st_size > 100


def test_sigkill_during_writes_leaves_a_whole_file(tmp_path):
    """A writer rewriting a 2-3 MB JSON in a loop is killed with SIGKILL at several moments; each time the target
    parses and holds one write whole."""
    target = tmp_path / "metrics.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for delay in (0.0, 0.05, 0.13, 0.31):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, env=env)
        assert writer.stdout.readline().strip() == b"first"
        time.sleep(delay)
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        assert writer.returncode == -signal.SIGKILL
        data = json.loads(target.read_text())
        assert data["k"] >= 1 and data["payload"] == [data["k"]] * 400_000
    assert list(tmp_path.glob("*.json")) == [target]  # leftovers, if any, are hidden and end in .tmp
