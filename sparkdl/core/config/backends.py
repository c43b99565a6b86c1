"""What each training backend accepts, in one place per backend: the options that exist
under it, how its ranks treat embedding tables, and the class that implements it. The
config checks a job with its backend's rules before Spark starts, the supervisor checks
the dataset's embedding tables with them before launching, and the launch builds the
backend named here."""
from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Sequence

from sparkdl.core.config.checks import check
from sparkdl.core.errors import ConfigError

if TYPE_CHECKING:
    from sparkdl.core.config.train import TrainConfig


class BackendRules:
    """One backend's rules; ``check`` and ``check_tables`` raise a ConfigError naming the key."""

    name = ""
    #: ``module:Class`` of the backend ranks run (imported on the executors only).
    implementation = ""
    #: Strategies with a class of their own (``train.strategy``), else ``implementation``.
    strategies: Dict[str, str] = {}

    def implementation_for(self, strategy: str) -> str:
        return self.strategies.get(strategy, self.implementation)

    def check(self, t: "TrainConfig") -> None:
        """Options set for another backend are errors that name the backend having them."""

    def check_tables(self, t: "TrainConfig", sparse_tables: Sequence[str]) -> None:
        """Whether this job can train the tables that take sparse gradients."""

    def _not_here(self, t: "TrainConfig") -> str:
        strategy = f", strategy: {t.strategy}" if t.backend == "torch" else ""
        return f"this job uses train.backend: {t.backend}{strategy}"


class HorovodRules(BackendRules):
    name = "horovod"
    compressions = ("none", "fp16")
    implementation = "sparkdl.training.backends.horovod:HorovodBackend"

    def check(self, t: "TrainConfig") -> None:
        check(t.strategy == "ddp", "train.strategy",
              f"{t.strategy} is an option of train.backend: torch ({self._not_here(t)})")
        check(t.ddp is None, "train.ddp",
              f"these are options of train.backend: torch with train.strategy: ddp ({self._not_here(t)})")
        check(t.allreduce.compression in self.compressions, "train.allreduce.compression",
              f"{t.allreduce.compression} is an option of train.backend: torch with train.strategy: ddp; "
              f"Horovod compresses with {' or '.join(self.compressions)}")
        check(t.local_sgd is None or t.local_sgd.host_period is None, "train.local_sgd.host_period",
              f"hierarchical averaging is an option of train.backend: torch ({self._not_here(t)})")

    def check_tables(self, t: "TrainConfig", sparse_tables: Sequence[str]) -> None:
        _local_sgd_dense_only(t, sparse_tables)


class TorchRules(BackendRules):
    name = "torch"
    implementation = "sparkdl.training.backends.torchdist:TorchBackend"
    strategies = {"pipeline": "sparkdl.training.backends.pipeline:PipelineBackend",
                  "tensor": "sparkdl.training.backends.tensor:TensorBackend"}

    def check(self, t: "TrainConfig") -> None:
        check(t.horovod is None, "train.horovod",
              "these are options of train.backend: horovod (this job uses train.backend: torch)")
        check(t.ddp is None or t.strategy == "ddp", "train.ddp",
              f"these are options of train.backend: torch with train.strategy: ddp ({self._not_here(t)})")
        check(t.pipeline is None or t.strategy == "pipeline", "train.pipeline",
              f"these are options of train.strategy: pipeline ({self._not_here(t)})")
        check(t.tensor is None or t.strategy == "tensor", "train.tensor",
              f"these are options of train.strategy: tensor ({self._not_here(t)})")
        if t.strategy == "ddp":
            return
        why = {"fsdp": "reduce-scatters full-precision gradients",
               "pipeline": "averages each stage's gradients across its replicas uncompressed",
               "tensor": "splits the layers that compression would act on"}[t.strategy]
        check(t.allreduce.compression == "none", "train.allreduce.compression",
              f"{t.allreduce.compression} is an option of train.strategy: ddp (fp16 also of train.backend: "
              f"horovod); train.strategy: {t.strategy} {why}")
        check(t.local_sgd is None, "train.local_sgd",
              f"local SGD is an option of train.strategy: ddp and of train.backend: horovod (train.strategy: "
              f"{t.strategy} {'shards the parameters' if t.strategy == 'fsdp' else 'splits the model'} that local "
              "SGD would average)")
        check(t.allreduce.embedding_gradients != "sparse", "train.allreduce.embedding_gradients",
              f"sparse is not an option of train.strategy: {t.strategy} (it exchanges dense gradients): use "
              "dense, or train.strategy: ddp")
        if t.strategy == "pipeline":
            check(t.allreduce.backward_passes_per_step == 1, "train.allreduce.backward_passes_per_step",
                  "a pipeline accumulates over its micro-batches: set train.pipeline.micro_batches instead")
            check(t.mixed_precision != "fp16", "train.mixed_precision",
                  "fp16's loss scaling does not reach inside a pipeline schedule: use bf16 or none")

    def check_tables(self, t: "TrainConfig", sparse_tables: Sequence[str]) -> None:
        _local_sgd_dense_only(t, sparse_tables)
        if sparse_tables and t.allreduce.compression != "none":
            also = ", or use train.backend: horovod" if t.allreduce.compression == "fp16" else ""
            raise ConfigError("train.allreduce.compression",
                              f"{t.allreduce.compression} under train.backend: torch compresses dense gradients "
                              f"only, and the tables of {list(sparse_tables)} take sparse ones: set "
                              f"train.allreduce.embedding_gradients: dense{also}")


def _local_sgd_dense_only(t: "TrainConfig", sparse_tables: Sequence[str]) -> None:
    if sparse_tables and t.local_sgd is not None:
        raise ConfigError("train.local_sgd", f"local SGD averages dense parameters, and the tables of "
                                             f"{list(sparse_tables)} take sparse gradients: set "
                                             "train.allreduce.embedding_gradients: dense, or remove train.local_sgd")


RULES: Dict[str, BackendRules] = {r.name: r for r in (HorovodRules(), TorchRules())}
