"""Where Spark runs: the ``spark`` section."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional

from sparkdl.core.config.checks import check


@dataclass(frozen=True)
class SparkConfig:
    """Where Spark runs when sparkdl starts it (ignored under spark-submit or in a notebook)."""

    #: The cluster sparkdl starts when no session is active (ignored under spark-submit, in a
    #: notebook with a session, and with ``remote``).
    master: str = "local-cluster[2,1,1024]"
    #: The Spark application's name.
    app_name: str = "sparkdl"
    #: Any Spark settings, applied when sparkdl starts the session.
    conf: Dict[str, str] = field(default_factory=dict)
    #: How long to wait for the executors of a cluster sparkdl started to register.
    executor_start_timeout_s: float = 120.0
    #: A Spark Connect endpoint (``sc://host:port/;token=...``): every Spark step then runs on
    #: that server's cluster and this process is a thin client. ``SPARK_REMOTE`` or
    #: ``--remote`` set it too; ``master`` is ignored then.
    remote: Optional[str] = None
    #: How long the first call to a Connect server may take (gRPC would retry for minutes).
    connect_timeout_s: float = 60.0

    def __post_init__(self):
        check(self.executor_start_timeout_s > 0, "spark.executor_start_timeout_s", "must be > 0 seconds")
        check(self.connect_timeout_s > 0, "spark.connect_timeout_s", "must be > 0 seconds")
        check(self.remote is None or self.remote.startswith("sc://"), "spark.remote",
               f"{self.remote!r} is not a Spark Connect URL: write sc://host:port (15002 is Spark's default port)")
