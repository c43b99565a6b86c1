"""spark-submit script: a two-rank launch per backend whose rank 0 waits while a stranger
on another host knocks on the event channel and on the backend's rendezvous, then finishes.

Rank 0 writes where to knock (``<shared>/knock-<backend>.json``) and waits for
``<shared>/knocked-<backend>``.
The torch backend's guard is the backend's own (it lives as long as the group). Horovod's
rendezvous has closed by the time the ranks run (it lives only through ``hvd.init()``), so
rank 0 opens another ``GuardedRendezvous`` for the same ranks, the class the backend uses.

    spark-submit stranger_job.py SHARED_DIR   → prints <backend>_sum=..., <backend>_refused=...
"""
import json
import logging
import sys
import time
from functools import partial
from pathlib import Path


def main(shared: str) -> None:
    from pyspark.sql import SparkSession

    from sparkdl.core.config import LaunchConfig
    from sparkdl.training.launch.driver import run_on_ranks

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    spark = SparkSession.builder.appName("sparkdl-stranger").getOrCreate()

    def fn(ctx, backend: str):
        from pyspark import BarrierTaskContext

        from sparkdl.training.backends.rendezvous import GuardedRendezvous
        from sparkdl.training.launch.plan import host_of, resolve_ip

        guard = None
        if ctx.is_chief:
            me = resolve_ip(ctx.slot.hostname)
            if backend == "torch":
                guard = ctx.backend._guard
            else:
                ranks = {resolve_ip(host_of(t.address)) for t in BarrierTaskContext.get().getTaskInfos()}
                guard = GuardedRendezvous(me, ranks)
                guard.init(f"{ctx.slot.hostname}:1", 1)
            knock = Path(shared) / f"knock-{backend}.json"
            knock.with_suffix(".tmp").write_text(json.dumps({"events": ctx.events.address,
                                                             "guard": f"{me}:{guard.port}"}))
            knock.with_suffix(".tmp").rename(knock)
            deadline = time.monotonic() + 120
            while not (Path(shared) / f"knocked-{backend}").exists():
                if time.monotonic() > deadline:
                    raise TimeoutError("the stranger did not knock within 120s")
                time.sleep(0.2)
        total = ctx.backend.allreduce_sum([ctx.rank + 1.0], "sum")  # the job goes on unaffected
        refused = guard.refused if guard else []
        if guard is not None and backend == "horovod":
            guard.stop()
        return {"sum": float(total[0]), "refused": refused}

    for backend in ("horovod", "torch"):
        results = run_on_ranks(spark, partial(fn, backend=backend), 2, LaunchConfig(), backend=backend)
        print(f"{backend}_sum={results[0]['sum']}")
        print(f"{backend}_refused={','.join(results[0]['refused'])}")
    spark.stop()


if __name__ == "__main__":
    main(sys.argv[1])
