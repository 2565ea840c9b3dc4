"""Benchmark: the research code's serial Resemblyzer pipeline against ``prepare``, on the same files.

    python benchmarks/prepare.py ../shared/ravdess [--limit 200] [--num-proc 2]

Times, each stage in a fresh process on the same files and machine:
  reference   ``resemblyzer.preprocess_wav`` + ``VoiceEncoder.embed_utterance`` + an 80-band librosa
              log-mel, one file at a time (the original research code);
  cold        ``prepare`` from scratch, all configs, empty feature cache;
  warm        ``prepare`` again: cache warm, dataset already up to date;
  rebuild     ``prepare`` with the cache warm but the Parquet configs deleted (rewritten from the cache);
  egemaps     the optional eGeMAPS functionals of the baselines (`ravdess_dataset.egemaps`, openSMILE) from the
              prepared ``audio`` config, empty cache; ``egemaps2``: again, read from its cache;
  prosody     the optional prosody frames of models with ``prosody_dim`` (`ravdess_dataset.derived.dataset_prosody`,
              librosa pyin) from the ``audio`` config, empty cache; ``prosody2``: again, read from its cache;
  egemaps_frames  the optional eGeMAPS low-level descriptor frames of models with ``prosody_source: egemaps``
              (openSMILE), empty cache; ``egemaps_frames2``: again, read from its cache;
  loader      the ``segments`` train split through `batch_loader` into PyTorch batches of 256.
It prints wall time, files/s, real-time factor (seconds of compute per second of audio), peak
memory of the process tree (PSS), the reference/ours ratio, and the embedding agreement
(cosine similarity of every file's utterance embedding, reference vs ours).
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ravdess_dataset.atomic import write_atomic  # noqa: E402


def subset(corpus: Path, limit: int | None, work: Path) -> tuple[Path, list[Path]]:
    """The corpus, or a folder of links to ``limit`` files spread evenly over it."""
    from ravdess_dataset.sources import find_audio

    files = sorted(find_audio(corpus))
    if not limit or limit >= len(files):
        return corpus, files
    chosen = [files[i] for i in np.linspace(0, len(files) - 1, limit).round().astype(int)]
    folder = work / "subset"
    for f in chosen:
        (folder / f.parent.name).mkdir(parents=True, exist_ok=True)
        (folder / f.parent.name / f.name).symlink_to(f.resolve())
    return folder, chosen


# ----------------------------------------------------------------------------- stages (child side)

def stage_reference(files: list[Path], out: Path) -> dict:
    import librosa
    from resemblyzer import VoiceEncoder, preprocess_wav

    encoder = VoiceEncoder("cpu", verbose=False)
    embeddings = {}
    for path in files:
        wav = preprocess_wav(path)
        embeddings[path.stem] = encoder.embed_utterance(wav)
        mel = librosa.feature.melspectrogram(y=wav, sr=16000, n_fft=400, hop_length=160, win_length=400, n_mels=80)
        librosa.power_to_db(mel)
    np.savez(out, files=np.array(list(embeddings)), X=np.stack(list(embeddings.values())))
    return {}


def stage_prepare(source: Path, work: Path, num_proc: int) -> dict:
    from ravdess_dataset.prepare import PrepareConfig, prepare

    report = prepare(PrepareConfig(source=str(source), output_dir=work / "dataset", cache_dir=work / "cache", num_proc=num_proc))
    print(report.summary(), flush=True)
    return {"stages": report.stages, "rows": report.rows, "computed": report.computed, "up_to_date": report.up_to_date}


def stage_derived(work: Path, kind: str, num_proc: int) -> dict:
    """One of the optional cached steps computed from the ``audio`` config: ``egemaps``, ``prosody`` or
    ``egemaps_frames``."""
    from ravdess_dataset import derived, egemaps
    from ravdess_dataset.splits import load_all

    compute = {"egemaps": egemaps.dataset_egemaps, "prosody": derived.dataset_prosody,
               "egemaps_frames": functools.partial(derived.dataset_prosody, source="egemaps")}[kind]
    files = load_all("mel", work / "dataset")["file"]
    compute(work / "dataset", files, cache_dir=work / "cache", num_proc=num_proc)
    return {}


def stage_loader(work: Path) -> dict:
    from datasets import load_dataset

    from ravdess_dataset.torch_loader import batch_loader

    train = load_dataset(str(work / "dataset"), "segments", split="train")
    start = time.perf_counter()
    loader = batch_loader(train, 256, ["log_mel", "length", "emotion", "actor", "embedding"], shuffle=True, seed=0)
    first = sum(len(batch["log_mel"]) for batch in loader)
    first_s = time.perf_counter() - start
    start, seen = time.perf_counter(), 0
    for _ in range(5):
        seen += sum(len(batch["log_mel"]) for batch in loader)
    return {"first_epoch_per_s": first / first_s, "per_s": seen / (time.perf_counter() - start), "rows": first}


# ----------------------------------------------------------------------------- driver (parent side)

MEMORY_INTERVAL_S = 0.5


def run_stage(name: str, args: list[str]) -> dict:
    """Run one stage in a child process; sample the memory of its whole process tree every 0.5 s.

    Memory is the sum of proportional set sizes (PSS): pages that forked workers share with their
    parent count once, not once per process as a sum of RSS would. Reading a process's PSS makes
    the kernel walk its page tables (~7 ms for one of prepare's processes), so sampling every 50 ms
    took about a third of a core from the stage being timed; every 0.5 s it takes a few percent.
    """
    result = Path(tempfile.mktemp(suffix=".json"))
    child = subprocess.Popen([sys.executable, __file__, "--stage", name, "--result", str(result), *args])
    peak, done = 0, threading.Event()

    def sample() -> None:
        nonlocal peak
        proc = psutil.Process(child.pid)
        while not done.is_set():
            try:
                tree = [proc, *proc.children(recursive=True)]
                peak = max(peak, sum(p.memory_full_info().pss for p in tree))
            except psutil.Error:
                pass
            time.sleep(MEMORY_INTERVAL_S)

    sampler = threading.Thread(target=sample, daemon=True)
    start = time.perf_counter()
    sampler.start()
    code = child.wait()
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    if code != 0:
        raise SystemExit(f"stage {name} failed with exit code {code}")
    out = json.loads(result.read_text())
    result.unlink()
    return {"wall": wall, "peak_pss": peak, **out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path, nargs="?", help="RAVDESS folder (Actor_XX/*.wav|*.flac)")
    parser.add_argument("--limit", type=int, default=None, help="time only N files spread over the corpus")
    parser.add_argument("--num-proc", type=int, default=len(os.sched_getaffinity(0)), help="prepare's worker processes")
    parser.add_argument("--skip-reference", action="store_true", help="do not run the (slow) reference pipeline")
    parser.add_argument("--work-dir", type=Path, default=None, help="keep the outputs here (default: a temp dir, removed at the end)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--files", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.stage:  # child process
        work = args.work_dir
        if args.stage == "reference":
            files = [Path(p) for p in json.loads(args.files.read_text())]
            out = stage_reference(files, work / "reference.npz")
        elif args.stage == "prepare":
            out = stage_prepare(args.corpus, work, args.num_proc)
        elif args.stage in ("egemaps", "prosody", "egemaps_frames"):
            out = stage_derived(work, args.stage, args.num_proc)
        else:
            out = stage_loader(work)
        args.result.write_text(json.dumps(out))
        return

    if args.corpus is None or not args.corpus.is_dir():
        parser.error(f"corpus folder not found: {args.corpus}")
    if args.work_dir is None:  # outputs in a temp dir, removed afterwards (about 0.6 GB for the full corpus)
        with tempfile.TemporaryDirectory(prefix="ravdess-bench-") as work:
            return benchmark(args, Path(work))
    return benchmark(args, args.work_dir)


def benchmark(args: argparse.Namespace, work: Path) -> None:
    """Run the stages in ``work`` and print (and with ``--json`` write) their results."""
    os.environ["HF_DATASETS_CACHE"] = str(work / "hf_cache")  # the stages' datasets copies stay in ``work`` too
    shutil.rmtree(work / "dataset", ignore_errors=True)
    shutil.rmtree(work / "cache", ignore_errors=True)
    shutil.rmtree(work / "subset", ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    source, files = subset(args.corpus, args.limit, work)
    audio_s = sum(sf.info(f).duration for f in files)
    (work / "files.json").write_text(json.dumps([str(f) for f in files]))
    common = ["--work-dir", str(work), "--num-proc", str(args.num_proc)]
    print(f"{len(files)} files, {audio_s:.0f} s of audio, {psutil.cpu_count()} cores, num_proc {args.num_proc}", flush=True)

    results = {}
    print("stages run one after another, each in a fresh process; this takes a few minutes", flush=True)
    if not args.skip_reference:
        results["reference"] = run_stage("reference", ["--files", str(work / "files.json"), *common])
    results["cold"] = run_stage("prepare", [str(source), *common])
    results["warm"] = run_stage("prepare", [str(source), *common])
    shutil.rmtree(work / "dataset" / "data")
    results["rebuild"] = run_stage("prepare", [str(source), *common])
    from ravdess_dataset import egemaps

    if egemaps.missing() is None:  # the optional cached steps of openSMILE: first computation, then the cache
        results["egemaps"] = run_stage("egemaps", common)  # the baselines' functionals
        results["egemaps2"] = run_stage("egemaps", common)
        results["egemaps_frames"] = run_stage("egemaps_frames", common)  # the input of prosody_source: egemaps
        results["egemaps_frames2"] = run_stage("egemaps_frames", common)
    else:
        print(f"eGeMAPS rows skipped: {egemaps.missing()}")
    results["prosody"] = run_stage("prosody", common)  # the optional cached input of models with prosody_dim
    results["prosody2"] = run_stage("prosody", common)
    loader = run_stage("loader", common)

    print(f"\n{'stage':<16}{'wall s':>9}{'files/s':>10}{'RTF':>9}{'peak PSS GiB':>14}")
    for name, r in results.items():
        print(f"{name:<16}{r['wall']:>9.1f}{len(files) / r['wall']:>10.1f}{r['wall'] / audio_s:>9.4f}{r['peak_pss'] / 2**30:>14.2f}")
    for name in ("cold", "warm", "rebuild"):
        stages = ", ".join(f"{k} {v:.1f}" for k, v in results[name]["stages"].items())
        print(f"  {name} stages (s): {stages}")
    if "reference" in results:
        print(f"reference / cold: {results['reference']['wall'] / results['cold']['wall']:.2f}x")
        ref = np.load(work / "reference.npz")
        results["cosine"] = embedding_agreement(ref, work)
        c = results["cosine"]
        print(f"embedding cosine, reference vs ours over {c['files']} files: min {c['min']:.6f}, "
              f"mean {c['mean']:.6f}, below 0.999: {c['below_0.999']}")
    print(f"DataLoader, segments train ({loader['rows']} rows, batches of 256): {loader['per_s']:,.0f} segments/s "
          f"({loader['first_epoch_per_s']:,.0f}/s for the first epoch, Arrow-to-tensor conversion included)")
    results["loader"] = loader
    results.update(files=len(files), audio_seconds=audio_s, num_proc=args.num_proc)
    if args.json:
        write_atomic(args.json, json.dumps(results, indent=2))


def embedding_agreement(ref, work: Path) -> dict:
    """Cosine similarity of reference and prepared utterance embeddings, file by file."""
    from datasets import concatenate_datasets, load_dataset

    ours = concatenate_datasets(list(load_dataset(str(work / "dataset"), "embeddings").values()))
    ours = dict(zip(ours["file"], ours.with_format("numpy")["embedding"]))
    cos = np.array([float(x @ ours[f] / np.linalg.norm(x) / np.linalg.norm(ours[f])) for f, x in zip(ref["files"], ref["X"])])
    return {"files": len(cos), "min": float(cos.min()), "mean": float(cos.mean()), "below_0.999": int((cos < 0.999).sum())}


if __name__ == "__main__":
    main()
