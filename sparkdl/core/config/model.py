"""The network: the ``model`` section."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Literal, Optional, Tuple

from sparkdl.core.config.checks import check


@dataclass(frozen=True)
class ModelConfig:
    """Which network to train: a built-in one or a user factory 'module:function'."""

    #: ``mlp`` (dense layers), ``cnn`` (image jobs) or ``custom`` (``factory``).
    kind: Literal["mlp", "cnn", "custom"] = "mlp"
    #: Hidden layer widths; for ``cnn``, the conv channels then the dense head.
    hidden: List[int] = field(default_factory=lambda: [256, 128])
    #: Dropout after each hidden layer.
    dropout: float = 0.1
    #: ``cnn``: (channels, height, width) of the input images.
    image_shape: Optional[Tuple[int, int, int]] = None
    #: ``custom``: ``module:function`` returning a torch module (or a module and a loss),
    #: importable on every executor.
    factory: Optional[str] = None
    #: Keyword arguments for ``factory``.
    factory_args: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        check(all(h > 0 for h in self.hidden), "model.hidden", "layer widths must be > 0")
        check(0.0 <= self.dropout < 1.0, "model.dropout", "must be in [0, 1)")
        if self.kind == "custom":
            check(bool(self.factory) and ":" in (self.factory or ""), "model.factory",
                   "kind 'custom' needs factory: 'package.module:function'")
        if self.kind == "cnn":
            check(self.image_shape is not None, "model.image_shape",
                   "kind 'cnn' needs image_shape: [channels, height, width]")
