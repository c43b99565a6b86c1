"""Run by the Petastorm compatibility env, not the main one: Petastorm 0.13.1's own
``make_batch_reader`` (its default thread pool) over shard 0 of 2 of a dataset, each
batch's array column made one float32 matrix as a training loop needs it. Prints one
JSON line: the best of ``repeat`` runs by rate, and every run's row count.

usage: python benchmarks/petastorm_reader.py DATASET_DIR REPEAT
"""
import json
import sys
import time
import warnings

import numpy as np
from petastorm import make_batch_reader


def one_pass(url: str) -> int:
    rows = 0
    with make_batch_reader(url, schema_fields=["features", "label"], cur_shard=0, shard_count=2,
                           num_epochs=1) as reader:
        for batch in reader:
            x = batch.features
            x = np.stack(x) if x.dtype == object else x
            rows += len(np.ascontiguousarray(x, dtype=np.float32))
    return rows


def main() -> None:
    warnings.simplefilter("ignore")  # Petastorm drives pyarrow's legacy dataset API
    url, repeat = f"file://{sys.argv[1]}", int(sys.argv[2])
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        rows = one_pass(url)
        runs.append((rows / (time.perf_counter() - t0), rows))
    best = max(runs)
    print(json.dumps({"rows_per_sec": best[0], "rows": best[1], "rows_per_run": [r for _, r in runs]}))


if __name__ == "__main__":
    main()
