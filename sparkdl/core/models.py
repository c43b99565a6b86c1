"""Networks sparkdl trains, and how a saved model is rebuilt from its spec.

A model is described by a small JSON-able spec (kind, sizes, factory, task) saved beside
its weights, so scoring and fine-tuning rebuild exactly the same module, and turn its
outputs into the same predictions: class probabilities (softmax), or numbers in the
label's units (the training target's standardization undone).

A custom factory ``module:function`` is called as ``function(input_width, outputs,
**factory_args)``, where ``outputs`` is the number of classes (or 1 for regression). It
returns a ``torch.nn.Module`` mapping a float32 ``(batch, input_width)`` tensor to
``(batch, outputs)`` raw scores, or a pair ``(module, loss)`` where ``loss(scores,
labels)`` returns the batch's mean loss as a scalar tensor; labels are int64 class
indices, or float32 standardized targets of shape ``(batch,)`` for regression.
"""
from __future__ import annotations

import importlib
import json
import logging
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from sparkdl.core.config import ModelConfig
from sparkdl.core.rundir import SPEC, WEIGHTS

log = logging.getLogger(__name__)


def model_spec(cfg: ModelConfig, input_width: int, num_classes: int, task: str = "classification",
               target: Optional[Dict[str, float]] = None,
               embeddings: Optional[List[Dict[str, Any]]] = None) -> Dict[str, Any]:
    """What it takes to rebuild the network and read its outputs (saved as model/spec.json).
    ``num_classes`` is 0 for regression; ``target`` the label's standardization (mean, std);
    ``embeddings`` one ``{name, size, dim, sparse, items, weighted}`` per embedded categorical
    column, bag or sparse vector, in the order of the dataset's index column (``sparse``:
    the table takes sparse gradients; ``items``: a bag's slots; ``weighted``: its values
    end the features)."""
    outputs = 1 if task == "regression" else num_classes
    spec = {"kind": cfg.kind, "task": task, "input_width": input_width, "num_classes": num_classes,
            "outputs": outputs, "hidden": list(cfg.hidden), "dropout": cfg.dropout}
    if embeddings:
        if cfg.kind == "cnn":
            raise ValueError("model.kind 'cnn' takes images, not categorical embeddings: use 'mlp' or 'custom'")
        spec["embeddings"] = [dict(e) for e in embeddings]
    if task == "regression":
        spec["target"] = target
    else:
        spec["threshold"] = 0.5  # two classes: the positive class's probability that predicts it
    if cfg.kind == "cnn":
        c, h, w = cfg.image_shape
        if c * h * w != input_width:
            raise ValueError(f"model.image_shape {list(cfg.image_shape)} holds {c * h * w} values but the "
                             f"dataset has {input_width} features per row; fix model.image_shape")
        spec["image_shape"] = [c, h, w]
        spec["head"] = cfg.hidden[2] if len(cfg.hidden) >= 3 else 128
    if cfg.kind == "custom":
        spec["factory"], spec["factory_args"] = cfg.factory, dict(cfg.factory_args)
    return spec


def _mlp(input_width: int, hidden: Sequence[int], num_classes: int, dropout: float):
    from torch import nn

    layers: List[nn.Module] = []
    width = input_width
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
        width = h
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def _table(e: Dict[str, Any]):
    """One column's table: an ``Embedding`` (one index a row), or for a bag an
    ``EmbeddingBag`` whose last row pads (a weighted bag sums, a bag of ids averages)."""
    from torch import nn

    if not e.get("items"):
        return nn.Embedding(e["size"], e["dim"], sparse=e.get("sparse", False))
    return nn.EmbeddingBag(e["size"] + 1, e["dim"], mode="sum" if e.get("weighted") else "mean",
                           padding_idx=e["size"], sparse=e.get("sparse", False))


def _tables(embeddings: List[Dict[str, Any]], dense: int):
    """The tables of :func:`_embedding_mlp`, with ``inputs(x, indices)``: the dense
    features (the first ``dense`` columns of ``x``) and every table's lookup, concatenated.
    ``indices`` holds each table's slots in order; a weighted bag's values are the columns of
    ``x`` after ``dense``, in the same order."""
    from torch import nn

    class Tables(nn.ModuleList):
        def inputs(self, x, indices):
            import torch

            parts, at, weight_at = [x[:, :dense]], 0, dense
            for e, table in zip(embeddings, self):
                items = e.get("items") or 0
                if not items:
                    parts.append(table(indices[:, at]))
                    at += 1
                    continue
                weighted = x[:, weight_at:weight_at + items] if e.get("weighted") else None
                weight_at += items if weighted is not None else 0
                parts.append(table(indices[:, at:at + items], per_sample_weights=weighted))
                at += items
            return torch.cat(parts, dim=1)

    return Tables(_table(e) for e in embeddings)


def _embedding_mlp(input_width: int, embeddings: List[Dict[str, Any]], hidden: Sequence[int], num_classes: int,
                   dropout: float):
    """An embedding table per categorical column (an embedding bag per bag of ids or
    sparse vector), concatenated with the dense features into an MLP (the Wide & Deep /
    DLRM input layer)."""
    from torch import nn

    dense = input_width - sum(e["items"] for e in embeddings if e.get("weighted"))

    class EmbeddingMLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.embeddings = _tables(embeddings, dense)
            self.mlp = _mlp(dense + sum(e["dim"] for e in embeddings), hidden, num_classes, dropout)

        def forward(self, x, indices):
            return self.mlp(self.embeddings.inputs(x, indices))

    return EmbeddingMLP()


def _cnn(image_shape: Tuple[int, int, int], hidden: Sequence[int], num_classes: int, dropout: float,
         head: Optional[int] = None):
    """Two conv blocks (``hidden[0]``, ``hidden[1]`` channels, 3x3, max-pooled) and a
    ``head``-unit dense layer, for images flattened into ``features`` (channels first).
    Specs without ``head`` (sparkdl <= 0.2) get the older global-average-pooled head."""
    from torch import nn

    c, h, w = image_shape
    ch = list(hidden[:2]) if len(hidden) >= 2 else [32, 64]
    if head is None:
        return nn.Sequential(
            nn.Unflatten(1, (c, h, w)),
            nn.Conv2d(c, ch[0], 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(ch[0], ch[1], 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(ch[1], num_classes))
    return nn.Sequential(
        nn.Unflatten(1, (c, h, w)),
        nn.Conv2d(c, ch[0], 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(ch[0], ch[1], 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(ch[1] * (h // 4) * (w // 4), head), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(head, num_classes))


def load_factory(path: str):
    """``package.module:function`` → the function; a clear error when it is not there."""
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"model.factory {path!r}: cannot import {module_name!r} ({e}); it must be importable "
                         "on the driver and on every executor") from e
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ValueError(f"model.factory {path!r}: {module_name} has no callable {attr!r}")
    return fn


def build_model_and_loss(spec: Dict[str, Any]) -> Tuple[Any, Optional[Callable]]:
    """A fresh torch module from a spec, and the loss a custom factory returned with it (or None)."""
    kind = spec["kind"]
    outputs = spec.get("outputs", spec["num_classes"])  # runs of sparkdl <= 0.2 have no "outputs"
    if kind == "mlp" and spec.get("embeddings"):
        return _embedding_mlp(spec["input_width"], spec["embeddings"], spec["hidden"], outputs, spec["dropout"]), None
    if kind == "mlp":
        return _mlp(spec["input_width"], spec["hidden"], outputs, spec["dropout"]), None
    if kind == "cnn":
        return _cnn(tuple(spec["image_shape"]), spec["hidden"], outputs, spec["dropout"], spec.get("head")), None
    if kind == "custom":
        extra = {"embeddings": spec["embeddings"]} if spec.get("embeddings") else {}
        built = load_factory(spec["factory"])(spec["input_width"], outputs, **extra, **spec.get("factory_args", {}))
        if isinstance(built, tuple):
            if len(built) != 2 or not callable(built[1]):
                raise ValueError(f"model.factory {spec['factory']!r} returned a tuple of {len(built)}; return a "
                                 "module, or (module, loss) with loss(scores, labels) -> a scalar tensor")
            return built
        return built, None
    raise ValueError(f"unknown model kind {kind!r}")


def build_model(spec: Dict[str, Any]):
    """A fresh torch module from a spec."""
    return build_model_and_loss(spec)[0]


def predictions(scores, spec: Dict[str, Any]):
    """The network's raw scores → class probabilities, or numbers in the label's units."""
    import torch

    scores = scores if scores.dtype == torch.float64 else scores.float()
    if spec.get("task", "classification") == "regression":
        out = scores[:, 0]
        target = spec.get("target")
        return out * target["std"] + target["mean"] if target else out
    return torch.softmax(scores, dim=1)


def save_model(model, spec: Dict[str, Any], directory: Path) -> None:
    """Write ``weights.pt`` (a plain state dict of ``model``, a module or a state dict
    already gathered) and ``spec.json``."""
    import torch

    directory.mkdir(parents=True, exist_ok=True)
    state = model if isinstance(model, dict) else model.state_dict()
    torch.save({k: v.detach().cpu() for k, v in state.items()}, directory / WEIGHTS)
    (directory / SPEC).write_text(json.dumps(spec, indent=2))


def update_spec(directory: Path, **values: Any) -> None:
    """Set keys of a saved model's spec (e.g. the decision threshold chosen after training)."""
    path = directory / SPEC
    spec = json.loads(path.read_text())
    spec.update(values)
    path.write_text(json.dumps(spec, indent=2))


def load_model(directory: "Path | str", device: str = "cpu"):
    """Rebuild a saved model (weights loaded with ``weights_only=True``); returns (model, spec)."""
    import torch

    directory = Path(directory)
    spec = json.loads((directory / SPEC).read_text())
    model = build_model(spec)
    model.load_state_dict(torch.load(directory / WEIGHTS, map_location=device, weights_only=True))
    return model.to(device).eval(), spec


def load_matching(model, state: Dict[str, Any]) -> Tuple[List[str], List[str]]:
    """Copy every tensor of ``state`` whose name and shape match ``model``; return (loaded, skipped)."""
    own = model.state_dict()
    loaded = [k for k, v in state.items() if k in own and own[k].shape == v.shape]
    skipped = sorted(set(own) - set(loaded))
    own.update({k: state[k] for k in loaded})
    model.load_state_dict(own)
    return loaded, skipped


def freeze(model, prefixes: Sequence[str]) -> List[str]:
    """Turn off gradients for parameters whose names start with any prefix; return their names."""
    frozen = []
    for name, p in model.named_parameters():
        if any(name.startswith(pfx) for pfx in prefixes):
            p.requires_grad_(False)
            frozen.append(name)
    if prefixes and not frozen:
        names = [n for n, _ in model.named_parameters()]
        raise ValueError(f"train.fine_tune.freeze {list(prefixes)} matches no parameter; names are {names}")
    return frozen
