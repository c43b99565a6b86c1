"""Cutting a network into pipeline stages at layer boundaries.

A stage is a module over consecutive layers of the network, holding the very layer
objects (so its parameters keep the whole network's names, and the stages' state dicts
together are the network's). The built-in networks are cut between their layers: an
``nn.Sequential`` (the MLP, the CNN, or what a custom factory returns) between children,
the embedding MLP between the layers of its MLP, its tables going with the first stage.
Each cut falls before a layer with parameters, so an activation or dropout stays with the
layer it follows; the stages are balanced by parameter count.

A network may instead declare its own cut: a ``pipeline_stages()`` method returning its
stages in order, submodules of it whose chained forwards are its forward.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, List, Optional, Sequence, Tuple

from torch import nn

Layer = Tuple[str, Any]


def _blocks(layers: Sequence[Layer]) -> List[List[Layer]]:
    """Layers grouped so that each group starts at a layer with parameters (a leading
    parameterless layer, like the CNN's unflatten, joins the first group)."""
    blocks: List[List[Layer]] = []
    for name, layer in layers:
        if blocks and not any(True for _ in layer.parameters()):
            blocks[-1].append((name, layer))
        elif blocks and not any(True for _, m in blocks[-1] for _ in m.parameters()):
            blocks[-1].append((name, layer))  # the leading parameterless layers so far
        else:
            blocks.append([(name, layer)])
    return blocks


def _balanced(weights: Sequence[int], parts: int) -> List[int]:
    """Where to cut ``weights`` into ``parts`` contiguous non-empty runs so that the
    heaviest run is as light as it can be: the runs' start indices."""
    n = len(weights)
    prefix = [0]
    for w in weights:
        prefix.append(prefix[-1] + w)
    inf = float("inf")
    best = [[inf] * (n + 1) for _ in range(parts + 1)]  # best[k][i]: first i blocks in k runs
    cut = [[0] * (n + 1) for _ in range(parts + 1)]
    best[0][0] = 0
    for k in range(1, parts + 1):
        for i in range(k, n + 1):
            for j in range(k - 1, i):
                cost = max(best[k - 1][j], prefix[i] - prefix[j])
                if cost < best[k][i]:
                    best[k][i], cut[k][i] = cost, j
    starts, i = [], n
    for k in range(parts, 0, -1):
        i = cut[k][i]
        starts.append(i)
    return starts[::-1]


def _parameters(block: Sequence[Layer]) -> int:
    return sum(p.numel() for _, layer in block for p in layer.parameters())


def _layers_of(net) -> Tuple[str, List[Layer]]:
    """(the attribute holding the cut layers, or '' for the network itself; the layers)."""
    if isinstance(net, nn.Sequential):
        return "", list(net.named_children())
    if isinstance(getattr(net, "mlp", None), nn.Sequential) and isinstance(getattr(net, "embeddings", None),
                                                                            nn.ModuleList):
        return "mlp", list(net.mlp.named_children())
    raise ValueError(f"train.strategy: pipeline cuts a network between the layers of an nn.Sequential; a "
                     f"{type(net).__name__} is not one: return an nn.Sequential from model.factory, give the "
                     "network a pipeline_stages() method returning its stages, or use train.strategy: fsdp")


def _declared(net) -> Optional[List[Any]]:
    """The stages ``net`` declares (``pipeline_stages()``), checked to be its submodules."""
    if not callable(getattr(net, "pipeline_stages", None)):
        return None
    stages = list(net.pipeline_stages())
    held = {id(m) for m in net.modules()}
    for k, stage in enumerate(stages):
        if not isinstance(stage, nn.Module) or id(stage) not in held or stage is net:
            raise ValueError(f"model.factory's {type(net).__name__}.pipeline_stages() item {k} is not a submodule of "
                             "the network: return its stages as attributes of it, in order")
    return stages


def split_stages(net, count: int) -> List[Any]:
    """``count`` stage modules over ``net``'s layers, in order (or the ones it declares)."""
    declared = _declared(net)
    if declared is not None:
        if len(declared) != count:
            raise ValueError(f"train.pipeline: {type(net).__name__}.pipeline_stages() declares {len(declared)} "
                             f"stages and this run asks for {count} (stages x virtual_stages): make them match")
        return declared
    attribute, layers = _layers_of(net)
    blocks = _blocks(layers)
    if len(blocks) < count:
        raise ValueError(f"train.pipeline: the network has {len(blocks)} layers with parameters, too few for "
                         f"{count} stages: lower train.pipeline.stages (or virtual_stages), or deepen the model")
    starts = _balanced([_parameters(b) for b in blocks], count) + [len(blocks)]
    stages = []
    for k in range(count):
        chosen = [layer for block in blocks[starts[k]:starts[k + 1]] for layer in block]
        body = nn.Sequential(OrderedDict(chosen))
        stages.append(body if not attribute else EmbeddingStage(net.embeddings if k == 0 else None, body))
    return stages


def keep_only(net, stages: Sequence[Any], mine: Sequence[int]) -> None:
    """Drop from ``net`` every layer the stages ``mine`` do not hold (replaced by an
    identity), so this rank's memory holds its stages only and ``net.state_dict()`` is
    theirs, under the whole network's names."""
    if _declared(net) is not None:
        names = {id(m): name for name, m in net.named_modules()}
        for k, stage in enumerate(stages):
            if k not in mine:
                parent, _, leaf = names[id(stage)].rpartition(".")
                setattr(net.get_submodule(parent), leaf, nn.Identity())
        return
    attribute, _ = _layers_of(net)
    holder = getattr(net, attribute) if attribute else net
    kept = {name for k in mine for name in _body(stages[k])._modules}
    for name in list(holder._modules):
        if name not in kept:
            setattr(holder, name, nn.Identity())
    if attribute and 0 not in mine:
        net.embeddings = nn.ModuleList()


class EmbeddingStage(nn.Module):
    """A stage of the embedding MLP: the first looks its rows up in the tables and
    concatenates them with the dense features; every stage runs its MLP layers."""

    def __init__(self, embeddings, mlp):
        super().__init__()
        if embeddings is not None:
            self.embeddings = embeddings
        self.mlp = mlp

    def forward(self, x, indices=None):
        if indices is not None:
            x = self.embeddings.inputs(x, indices)
        return self.mlp(x)


def _body(stage):
    return stage.mlp if isinstance(stage, EmbeddingStage) else stage
