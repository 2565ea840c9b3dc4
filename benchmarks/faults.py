"""The fault matrix on the full corpus: kills of `prepare` and `train.py` at several points, a damaged feature cache,
a damaged checkpoint, two prepares sharing a cache. Each scenario is compared with an uninterrupted run.

    python benchmarks/faults.py ../shared/ravdess --work-dir /tmp/faults [--json results.json]

Prints a table: scenario, outcome (what the recovering run did), data identical (the dataset, or the final
weights, equal to the uninterrupted run's), processes left (of the killed run's tree, a moment after it ended),
seconds (kill plus recovery).
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ravdess_dataset.atomic import write_atomic  # noqa: E402
from ravdess_dataset.console import configure_console  # noqa: E402
from tests.faults import (  # noqa: E402
    PREPARE_POINTS, TRAIN_POINTS, corrupt, interrupt, prepare_command, same_dataset, start, wait_for, weights,
)

TRAIN = ["configs/speech_vae.yaml", "--report_to", "none", "--probe", "false", "--max_steps", "40", "--checkpointing_steps", "10",
         "--save_total_limit", "20", "--lr_scheduler_type", "constant", "--kl_warmup_steps", "0"]
CHECKPOINT_EVERY = 10


def run(args: list[str], log: Path) -> int:
    return start(args, log).wait(timeout=1800)


def reused(log: Path) -> str:
    found = re.search(r"(\d+) files computed, (\d+) reused", log.read_text())
    return f"{found.group(1)} computed, {found.group(2)} reused" if found else "no summary"


def prepare_kill(corpus: Path, work: Path, reference: Path, point: str, sig: int) -> dict:
    out, cache = work / "out", work / "cache"
    start_time = time.perf_counter()
    process = start(prepare_command(corpus, out, cache), work / "killed.log")
    reached = wait_for(process, lambda: PREPARE_POINTS[point](out, cache), timeout=900)
    left = interrupt(process, sig)
    code = run(prepare_command(corpus, out, cache), work / "rerun.log")
    staging = len(list(out.glob(".prepare-*"))) + len(list(cache.glob("features/*/.*.tmp")))
    return {"outcome": f"{'killed' if reached else 'ended before the point'}; re-run rc {code}: {reused(work / 'rerun.log')}; "
                       f"{staging} staging files left",
            "identical": code == 0 and same_dataset(out, reference), "left": len(left), "seconds": time.perf_counter() - start_time}


def cache_damage(corpus: Path, work: Path, reference: Path, reference_cache: Path, damage: str) -> dict:
    cache = work / "cache"
    shutil.copytree(reference_cache, cache)
    corrupt(cache, damage)
    start_time = time.perf_counter()
    code = run(prepare_command(corpus, work / "out", cache), work / "rerun.log")
    text = (work / "rerun.log").read_text()
    noticed = re.search(r"feature cache: (\d+) damaged", text)
    return {"outcome": f"re-run rc {code}: {reused(work / 'rerun.log')}; "
                       f"{noticed.group(1) + ' damaged entries/shards reported' if noticed else 'damage not reported'}",
            "identical": code == 0 and same_dataset(work / "out", reference), "left": 0, "seconds": time.perf_counter() - start_time}


def concurrent(corpus: Path, work: Path, reference: Path) -> dict:
    half = work / "half"
    for actor in sorted(corpus.glob("Actor_*"))[:12]:
        shutil.copytree(actor, half / actor.name)
    start_time = time.perf_counter()
    first = start(prepare_command(corpus, work / "a", work / "cache"), work / "a.log")
    second = start(prepare_command(half, work / "b", work / "cache"), work / "b.log")
    codes = first.wait(timeout=1800), second.wait(timeout=1800)
    return {"outcome": f"both ran at once on one cache: rc {codes[0]} and {codes[1]}",
            "identical": codes == (0, 0) and same_dataset(work / "a", reference), "left": 0,
            "seconds": time.perf_counter() - start_time}


def train_kill(dataset: Path, work: Path, expected: dict, point: str, sig: int) -> dict:
    out = work / "run"
    command = ["train.py", *TRAIN, "--dataset_dir", str(dataset), "--output_dir", str(out)]
    start_time = time.perf_counter()
    process = start(command, work / "killed.log")
    reached = wait_for(process, lambda: TRAIN_POINTS[point](out, CHECKPOINT_EVERY), timeout=900)
    left = interrupt(process, sig)
    code = run([*command, "--resume_from_checkpoint", "latest"], work / "resumed.log")
    resumed = re.search(r"resumed from \S+/(step_\d+)", (work / "resumed.log").read_text())
    return {"outcome": f"{'killed' if reached else 'ended before the point'}; resume rc {code} from "
                       f"{resumed.group(1) if resumed else 'nothing'}",
            "identical": code == 0 and same_weights(weights(out), expected), "left": len(left),
            "seconds": time.perf_counter() - start_time}


def checkpoint_damage(dataset: Path, work: Path, expected: dict, reference_run: Path) -> dict:
    out = work / "run"
    shutil.copytree(reference_run, out)
    (out / "model.safetensors").unlink()
    for later in sorted((out / "checkpoints").glob("step_*"), key=lambda p: int(p.name.split("_")[1]))[2:]:
        shutil.rmtree(later)  # as if killed after the second checkpoint ...
    latest = max((out / "checkpoints").glob("step_*"), key=lambda p: int(p.name.split("_")[1]))
    (latest / "optimizer.bin").unlink()  # ... with a file of it lost
    start_time = time.perf_counter()
    code = run(["train.py", *TRAIN, "--dataset_dir", str(dataset), "--output_dir", str(out), "--resume_from_checkpoint", "latest"],
               work / "resumed.log")
    text = (work / "resumed.log").read_text()
    resumed = re.search(r"resumed from \S+/(step_\d+)", text)
    return {"outcome": f"{latest.name} damaged{' (named)' if 'is damaged' in text else ''}; resume rc {code} from "
                       f"{resumed.group(1) if resumed else 'nothing'}",
            "identical": code == 0 and same_weights(weights(out), expected), "left": 0, "seconds": time.perf_counter() - start_time}


def same_weights(got: dict, expected: dict) -> bool:
    return got.keys() == expected.keys() and all(np.array_equal(got[k], expected[k]) for k in expected)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--work-dir", type=Path, required=True)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    configure_console()
    work = args.work_dir
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    corpus = args.corpus.resolve()

    print("uninterrupted prepare and training (the references) ...", flush=True)
    reference, reference_cache = work / "reference" / "out", work / "reference" / "cache"
    assert run(prepare_command(corpus, reference, reference_cache), work / "reference.log") == 0
    reference_run = work / "reference" / "run"
    assert run(["train.py", *TRAIN, "--dataset_dir", str(reference), "--output_dir", str(reference_run)], work / "train.log") == 0
    expected = weights(reference_run)

    scenarios = {}
    for point in PREPARE_POINTS:
        for sig in (signal.SIGKILL, signal.SIGTERM):
            name = f"prepare, {signal.Signals(sig).name} during {point}"
            scenarios[name] = lambda w, p=point, s=sig: prepare_kill(corpus, w, reference, p, s)
    for damage in ("overwrite", "truncate"):
        scenarios[f"prepare, feature cache shard: {damage}"] = lambda w, d=damage: cache_damage(corpus, w, reference, reference_cache, d)
    scenarios["prepare x 2 at once, one cache (full + half corpus)"] = lambda w: concurrent(corpus, w, reference)
    for point in TRAIN_POINTS:
        for sig in (signal.SIGKILL, signal.SIGTERM):
            name = f"train, {signal.Signals(sig).name} during {point}"
            scenarios[name] = lambda w, p=point, s=sig: train_kill(reference, w, expected, p, s)
    scenarios["train, latest checkpoint missing a file"] = lambda w: checkpoint_damage(reference, w, expected, reference_run)

    rows = []
    for i, (name, scenario) in enumerate(scenarios.items()):
        folder = work / f"scenario_{i}"
        folder.mkdir()
        print(f"{name} ...", flush=True)
        rows.append({"scenario": name, **scenario(folder)})
        shutil.rmtree(folder, ignore_errors=True)
    print("\n| scenario | outcome | data identical | processes left | seconds |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['scenario']} | {r['outcome']} | {'yes' if r['identical'] else 'NO'} | {r['left']} | {r['seconds']:.0f} |")
    if args.json:
        write_atomic(args.json, json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
