"""Cutting networks into pipeline stages, the tensor-parallel plan, and checkpoints whose
parts are shards of their own."""
import pytest
import torch

from sparkdl.core.models import _cnn, _embedding_mlp, _mlp
from sparkdl.training.backends.stages import keep_only, split_stages
from sparkdl.training.backends.tensor import tensor_plan
from sparkdl.training.rank.checkpoints import list_checkpoints, load_latest, save_checkpoint, save_shard, shard_path


def _chain(stages, *inputs):
    out = stages[0](*inputs)
    for stage in stages[1:]:
        out = stage(out)
    return out


@pytest.mark.parametrize("count", [2, 3, 4])
def test_stages_compute_the_network_and_keep_its_names(count):
    torch.manual_seed(0)
    net = _mlp(10, [64, 48, 32], 2, 0.0).eval()
    stages = split_stages(net, count)
    x = torch.randn(5, 10)
    assert torch.equal(_chain(stages, x), net(x))
    names = [n for s in stages for n in s.state_dict()]
    assert names == list(net.state_dict())  # each parameter in one stage, under the network's name
    assert all(any(True for _ in s.parameters()) for s in stages)


def test_stages_balance_parameters_and_cut_before_a_layer_with_parameters():
    net = _mlp(10, [1000, 10, 10], 2, 0.1)
    first, second = split_stages(net, 2)
    assert list(first._modules) == ["0", "1", "2"]  # the wide layer alone, with its ReLU and dropout
    assert list(second._modules)[0] == "3"


def test_the_embedding_model_splits_with_its_tables_on_the_first_stage():
    torch.manual_seed(0)
    net = _embedding_mlp(5, [{"size": 10, "dim": 3}, {"size": 7, "dim": 2}], [16, 8], 2, 0.0).eval()
    stages = split_stages(net, 3)
    x, idx = torch.randn(4, 5), torch.stack([torch.randint(0, 10, (4,)), torch.randint(0, 7, (4,))], 1)
    assert torch.equal(_chain(stages, x, idx), net(x, idx))
    assert [k for k in stages[0].state_dict() if k.startswith("embeddings")] == ["embeddings.0.weight",
                                                                                 "embeddings.1.weight"]
    keep_only(net, stages, [2])
    assert list(net.state_dict()) == list(stages[2].state_dict()) == ["mlp.6.weight", "mlp.6.bias"]


def test_the_cnn_splits_and_what_cannot_split_says_why():
    torch.manual_seed(0)
    net = _cnn((1, 8, 8), [4, 8, 16], 3, 0.0, 16).eval()
    stages = split_stages(net, 2)
    x = torch.randn(2, 64)
    assert torch.equal(_chain(stages, x), net(x))
    with pytest.raises(ValueError, match="3 layers with parameters, too few for 4 stages"):
        split_stages(_mlp(10, [8, 8], 2, 0.0), 4)

    class Custom(torch.nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(ValueError, match="return an nn.Sequential from model.factory"):
        split_stages(Custom(), 2)


class TwoTowers(torch.nn.Module):
    """A network that declares its own cut: an encoder and a head, not an nn.Sequential."""

    def __init__(self, declared=None):
        super().__init__()
        self.encoder = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 16),
                                           torch.nn.ReLU())
        self.head = torch.nn.Linear(16, 2)
        self._declared = declared

    def forward(self, x):
        return self.head(self.encoder(x))

    def pipeline_stages(self):
        return self._declared or [self.encoder, self.head]


def test_a_network_may_declare_its_stages():
    torch.manual_seed(0)
    net = TwoTowers()
    stages = split_stages(net, 2)
    x = torch.randn(3, 6)
    assert torch.equal(_chain(stages, x), net(x))
    with pytest.raises(ValueError, match=r"declares 2 stages and this run asks for 4"):
        split_stages(net, 4)
    keep_only(net, stages, [0])  # the head's stage is another rank's: only the encoder stays
    assert list(net.state_dict()) == ["encoder.0.weight", "encoder.0.bias", "encoder.2.weight", "encoder.2.bias"]
    stranger = TwoTowers(declared=[torch.nn.Linear(6, 16), torch.nn.Linear(16, 2)])
    with pytest.raises(ValueError, match=r"item 0 is not a submodule of the network"):
        split_stages(stranger, 2)


def test_the_tensor_plan_pairs_column_and_row_splits():
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel

    plan = tensor_plan(_mlp(10, [64, 32], 2, 0.0), 2)  # three linear layers: the output one stays whole
    assert [(k, type(v)) for k, v in plan.items()] == [("0", ColwiseParallel), ("3", RowwiseParallel)]
    plan = tensor_plan(_mlp(10, [64, 32, 16], 2, 0.0), 2)  # four: two pairs
    assert list(plan) == ["0", "3", "6", "9"]
    assert list(tensor_plan(_embedding_mlp(5, [{"size": 10, "dim": 3}], [16], 2, 0.0), 2)) == ["mlp.0", "mlp.3"]
    with pytest.raises(ValueError, match="does not divide the width 15 of layer 0"):
        tensor_plan(_mlp(10, [15, 8], 2, 0.0), 2)
    with pytest.raises(ValueError, match="model.kind: mlp"):
        tensor_plan(_cnn((1, 8, 8), [4, 8, 16], 3, 0.0, 16), 2)


def test_a_checkpoint_with_a_missing_shard_is_skipped_and_old_shards_go(tmp_path):
    for epoch in (1, 2):
        for k in (0, 1):
            save_shard(tmp_path, epoch, k, {"model": {"w": torch.ones(1) * epoch}})
        save_checkpoint(tmp_path, epoch, {"shards": 2}, keep=1)
    assert not shard_path(tmp_path, 1, 0).exists()  # dropped with its epoch's file
    save_shard(tmp_path, 3, 0, {"model": {}})  # epoch 3's second stage never wrote its shard
    save_checkpoint(tmp_path, 3, {"shards": 2}, keep=3)
    assert [e for e, _ in list_checkpoints(tmp_path)] == [3, 2]
    assert load_latest(tmp_path)["epoch"] == 2
