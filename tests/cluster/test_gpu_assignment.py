"""GPU assignment, tested on CPU: Spark hands each task a (fake) GPU from a discovery
script; the rank sees its address and, with a CPU-only torch, falls back to CPU saying why."""
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parent / "scripts" / "gpu_assignment.py"


def test_each_rank_sees_its_gpu_and_explains_the_cpu_fallback():
    out = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert [r["resources"] for r in report["results"]] == [{"gpu": ["0"]}, {"gpu": ["0"]}]
    assert all(r["device"] == "cpu" for r in report["results"])  # torch here is a CPU build
    assert len(report["notes"]) == 2 and all("Spark assigned GPU 0" in n for n in report["notes"])
