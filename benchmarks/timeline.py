"""Horovod's own profiler, read back: where a training step's time goes between the
compute and the gradient allreduce (negotiation across ranks, then Gloo's ring).

A run with ``train.launch.env.HOROVOD_TIMELINE=<file>`` makes rank 0 write a Chrome-trace
JSON of every collective; this module turns it into milliseconds per step.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Tuple

Interval = Tuple[int, int]


def _events(path: Path) -> List[dict]:
    text = path.read_text().rstrip().rstrip(",")
    return json.loads(text if text.endswith("]") else text + "]")  # the file is left open while ranks run


def gradient_intervals(path: Path) -> Dict[str, Dict[str, List[Interval]]]:
    """For each gradient tensor: its NEGOTIATE_ALLREDUCE and ALLREDUCE intervals (µs), in step order."""
    events = _events(path)
    names = {e["pid"]: e["args"]["name"] for e in events
             if e.get("name") == "process_name" and "name" in e.get("args", {})}
    open_: Dict[int, List[Tuple[str, int]]] = {}
    out: Dict[str, Dict[str, List[Interval]]] = {}
    for e in events:
        pid, ph = e.get("pid"), e.get("ph")
        tensor = names.get(pid, "")
        # gradients are named after parameters; the loop's own metric sums are train.N / val.N
        if not tensor.startswith("allreduce.") or tensor.split(".")[1] in ("train", "val"):
            continue
        if ph == "B":
            open_.setdefault(pid, []).append((e["name"], e["ts"]))
        elif ph == "E" and open_.get(pid):
            activity, start = open_[pid].pop()
            if activity in ("NEGOTIATE_ALLREDUCE", "ALLREDUCE"):
                out.setdefault(tensor, {}).setdefault(activity, []).append((start, e["ts"]))
    return out


def step_breakdown(path: Path) -> Dict[str, float]:
    """Mean per step, in ms, on rank 0: ``exposed`` (the last gradient ready, i.e. backward done,
    → every gradient reduced: what the optimizer step waits for), within it ``negotiate`` (until
    all ranks agree to reduce that gradient: mostly waiting for the slower rank) and
    ``allreduce`` (Gloo's ring-allreduce of the fused gradients, which may overlap the backward)."""
    tensors = gradient_intervals(path)
    if not tensors:
        return {}
    steps = min(len(t.get("ALLREDUCE", [])) for t in tensors.values())
    exposed = negotiate = allreduce = 0.0
    for i in range(steps):
        last_ready = max(t["NEGOTIATE_ALLREDUCE"][i][0] for t in tensors.values())
        last_agreed = max(t["NEGOTIATE_ALLREDUCE"][i][1] for t in tensors.values())
        ar_start = min(t["ALLREDUCE"][i][0] for t in tensors.values())
        ar_end = max(t["ALLREDUCE"][i][1] for t in tensors.values())
        exposed += ar_end - last_ready
        negotiate += last_agreed - last_ready
        allreduce += ar_end - ar_start
    ms = lambda total: round(total / steps / 1e3, 3)  # noqa: E731
    return {"steps": steps, "tensors": len(tensors), "exposed_ms": ms(exposed), "negotiate_ms": ms(negotiate),
            "allreduce_ms": ms(allreduce)}
