"""How the benchmarks measure: best-of timing, the machine record, and peak memory of
the driver and of each executor, sampled from the process tree while a stage runs."""
from __future__ import annotations

import os
import platform
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

#: The repository root: configs, the embedded data and the compatibility env live under it.
REPO = Path(__file__).resolve().parent.parent


def timed(fn: Callable[[], int], repeat: int = 1) -> Dict[str, Any]:
    """The best of ``repeat`` runs of ``fn`` (which returns the rows it processed) by rows/s,
    with every run's row count: a reader that drops rows shows it instead of looking fast."""
    best: Optional[Dict[str, Any]] = None
    counts: List[int] = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        rows = fn()
        dt = max(time.perf_counter() - t0, 1e-9)
        counts.append(rows)
        if best is None or rows / dt > best["rows_per_sec"]:
            best = {"seconds": round(dt, 4), "rows": rows, "rows_per_sec": round(rows / dt, 1)}
    return {**best, "rows_per_run": counts}


def steady_rate(rates: List[float]) -> float:
    """The median per-epoch rate after the first epoch (which pays for warm-up)."""
    import statistics

    return float(statistics.median(rates[1:] or rates))


def ratio(value: float, baseline: float) -> float:
    return round(value / baseline, 3) if baseline else float("nan")


def machine() -> Dict[str, Any]:
    """Cores, memory and versions, recorded with every result."""
    import horovod
    import numpy
    import pyarrow
    import pyspark
    import torch

    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    return {"cores": os.cpu_count(), "memory_gib": round(mem, 1), "python": platform.python_version(),
            "torch": torch.__version__, "horovod": horovod.__version__, "pyspark": pyspark.__version__,
            "pyarrow": pyarrow.__version__, "numpy": numpy.__version__, "platform": platform.platform()}


def _executor_id(cmdline: List[str]) -> Optional[str]:
    if any("CoarseGrainedExecutorBackend" in part for part in cmdline) and "--executor-id" in cmdline:
        return cmdline[cmdline.index("--executor-id") + 1]
    return None


def _memory_mib(proc) -> float:
    """Proportional set size where the kernel reports it (forked Python workers share
    pages with their daemon; RSS would count those pages once per worker), else RSS."""
    import psutil

    try:
        info = proc.memory_full_info()
        return getattr(info, "pss", info.rss) / 2 ** 20
    except (psutil.AccessDenied, psutil.ZombieProcess):
        return proc.memory_info().rss / 2 ** 20


def memory_by_role(root_pid: Optional[int] = None) -> Dict[str, float]:
    """MiB in use now, by role: ``driver python``, ``driver jvm``, and per executor
    ``executor-N jvm`` and ``executor-N python`` (its Python daemon and workers)."""
    import psutil

    root = psutil.Process(root_pid or os.getpid())
    usage: Dict[str, float] = {"driver python": _memory_mib(root)}

    def walk(proc, owner: str) -> Iterator:
        for child in proc.children():
            try:
                cmdline = child.cmdline()
                ex = _executor_id(cmdline)
                child_owner = f"executor-{ex}" if ex is not None else owner
                kind = "jvm" if os.path.basename(cmdline[0] if cmdline else "") == "java" else "python"
                yield child, f"{child_owner} {kind}"
                yield from walk(child, child_owner)
            except psutil.NoSuchProcess:
                continue

    for proc, role in walk(root, "driver"):
        try:
            usage[role] = usage.get(role, 0.0) + _memory_mib(proc)
        except psutil.NoSuchProcess:
            continue
    return usage


class PeakMemory:
    """Samples :func:`memory_by_role` in a background thread; ``peaks`` is the largest
    value each role reached while the context was open (MiB)."""

    def __init__(self, interval_s: float = 0.5):
        self.interval_s = interval_s
        self.peaks: Dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-memory", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for role, mib in memory_by_role().items():
                    self.peaks[role] = max(self.peaks.get(role, 0.0), round(mib, 1))
            except Exception:  # a process ending mid-walk: take the next sample
                pass
            self._stop.wait(self.interval_s)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
