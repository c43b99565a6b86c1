"""The Horovod-timeline reader the benchmarks use to split a step into compute and communication."""
import json

from benchmarks.timeline import step_breakdown


def _trace(tmp_path, steps):
    """A Chrome trace as Horovod writes it: per tensor a process, B/E pairs per activity."""
    events = []
    for pid, name in enumerate(["allreduce.0.weight", "allreduce.0.bias", "allreduce.val.1"], start=1):
        events.append({"name": "process_name", "ph": "M", "pid": pid, "args": {"name": name}})
    for step, (neg0, neg1, ar_start, ar_end) in enumerate(steps):
        for pid, neg in ((1, neg0), (2, neg1), (3, neg0)):
            events += [{"ph": "B", "name": "NEGOTIATE_ALLREDUCE", "ts": neg, "pid": pid},
                       {"ph": "E", "ts": ar_start, "pid": pid},
                       {"ph": "B", "name": "ALLREDUCE", "ts": ar_start, "pid": pid},
                       {"ph": "B", "name": "GLOO_ALLREDUCE", "ts": ar_start + 10, "pid": pid},
                       {"ph": "E", "ts": ar_end - 10, "pid": pid},
                       {"ph": "E", "ts": ar_end, "pid": pid}]
    path = tmp_path / "timeline.json"
    # Horovod leaves the array open while ranks run: a trailing comma, no closing bracket
    path.write_text("[\n" + ",\n".join(json.dumps(e) for e in events) + ",")
    return path


def test_step_breakdown_averages_what_the_step_waits_for(tmp_path):
    # step 1: gradients ready at 0 and 400 µs, reduced from 1000 to 3000;
    # step 2: ready at 10000 and 10200, reduced from 10500 to 14000
    path = _trace(tmp_path, [(0, 400, 1000, 3000), (10_000, 10_200, 10_500, 14_000)])
    out = step_breakdown(path)
    assert out["steps"] == 2 and out["tensors"] == 2  # the loop's own val.N sums are not gradients
    assert out["exposed_ms"] == 3.2  # last ready → reduced: (2600 + 3800) / 2 µs
    assert out["negotiate_ms"] == 0.45  # last ready → agreed: (600 + 300) / 2 µs
    assert out["allreduce_ms"] == 2.75  # (2000 + 3500) / 2 µs


def test_a_run_without_gradients_gives_nothing(tmp_path):
    path = tmp_path / "timeline.json"
    path.write_text("[]")
    assert step_breakdown(path) == {}
