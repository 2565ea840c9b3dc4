"""Real interruptions for the fault tests and `benchmarks/faults.py`: start `prepare` or `train.py` as a process,
wait until it reaches a named point, send SIGKILL or SIGTERM, and report what is left behind."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import psutil

ROOT = Path(__file__).resolve().parents[1]


def start(args: list[str], log: Path, env: Optional[dict] = None) -> psutil.Popen:
    """A project command (``-m ravdess_dataset ...`` or ``train.py ...``) in a process of its own, output to ``log``."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    with open(log, "w") as out:
        return psutil.Popen([sys.executable, *args], cwd=ROOT, env=environment, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)


def wait_for(process: psutil.Popen, reached: Callable[[], bool], timeout: float = 300.0, poll: float = 0.005) -> bool:
    """Poll until ``reached()`` (True) or the process ends first or the time is up (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if reached():
            return True
        if process.poll() is not None:
            return reached()
        time.sleep(poll)
    return False


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Those of ``processes`` still running (zombies, which only wait to be reaped, do not count)."""
    running = []
    for p in processes:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                running.append(p)
        except psutil.NoSuchProcess:
            pass
    return running


def interrupt(process: psutil.Popen, sig: int, grace: float = 60.0) -> list[psutil.Process]:
    """Send ``sig`` to the process (only to it, as a user's kill would) and wait for it to end; returns the processes
    of its tree still alive a moment later (workers that outlived it, killed now so that nothing lingers), which
    the caller should find empty. Processes its workers start after the signal are not seen."""
    try:
        family = process.children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    process.send_signal(sig)
    try:
        process.wait(timeout=grace)
    finally:
        time.sleep(1.0)  # the parent-death signal reaches the workers
        left = alive(family)
        for p in left:
            p.send_signal(signal.SIGKILL)
        process.kill() if process.poll() is None else None
    return left
