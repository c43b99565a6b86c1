"""spark-submit script: ``sparkdl train`` on a prepared dataset, with one rank pausing at a
chosen point of the first attempt so that the test can break the network there.

The pausing rank writes ``<shared>/paused.json`` (its host and epoch) and waits, at most
``PAUSE_S`` seconds, for ``<shared>/go``; later attempts run through.

    spark-submit train_paused.py CONFIG LAKE SHARED RANK EPOCH [--set key=value ...]
      → the run's key=value lines, and epochs=1,2,... (the committed history)
"""
import json
import logging
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from sparkdl.training.rank.callbacks import Callback

PAUSE_S = 180


@dataclass(frozen=True)
class PauseAt(Callback):
    shared: str
    rank: int
    epoch: int

    def on_step_start(self, state) -> None:
        if (state.attempt, state.rank, state.epoch, state.step) != (1, self.rank, self.epoch, 1):
            return
        shared = Path(self.shared)
        (shared / "paused.tmp").write_text(json.dumps({"host": socket.gethostname(), "epoch": state.epoch}))
        (shared / "paused.tmp").rename(shared / "paused.json")
        deadline = time.monotonic() + PAUSE_S
        while not (shared / "go").exists() and time.monotonic() < deadline:
            time.sleep(0.2)


def main(config: str, lake: str, shared: str, rank: int, epoch: int, sets) -> None:
    from sparkdl.cli import result_lines
    from sparkdl.core.config.loading import load_config
    from sparkdl.core.errors import SparkdlError
    from sparkdl.workflow import train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        result = train(load_config(config, sets), lake, callbacks=[PauseAt(shared, rank, epoch)])
    except SparkdlError as e:  # as the sparkdl command reports it
        print(f"sparkdl: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    print(result_lines(result))
    print("epochs=" + ",".join(str(h["epoch"]) for h in result.metrics.history))
    print(f"attempts={json.dumps(result.metrics.attempts)}")


if __name__ == "__main__":
    args = sys.argv[1:]
    sets = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
    positional = [a for i, a in enumerate(args) if a != "--set" and (i == 0 or args[i - 1] != "--set")]
    main(positional[0], positional[1], positional[2], int(positional[3]), int(positional[4]), sets)
