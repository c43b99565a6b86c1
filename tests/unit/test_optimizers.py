"""The rank's distributed optimizer: sparse embedding tables step apart (SparseAdam, only
the rows a batch touched), everything else with the configured optimizer; the pair
behaves as one optimizer for the loop, the schedule and checkpoints. Horovod runs as one
process here (a real ``hvd.init()``, world size 1)."""
import pytest
import torch
from torch import nn

from sparkdl.core.config import ModelConfig
from sparkdl.core.models import build_model, model_spec
from sparkdl.training.backends.horovod import HorovodBackend, distributed_optimizer
from sparkdl.training.rank.optimizers import OptimizerGroup, local_optimizer


@pytest.fixture(scope="module")
def hvd():
    import horovod.torch as hvd

    hvd.init()
    yield hvd


def _embedding_mlp(sparse: bool):
    tables = [{"name": "small", "size": 10, "dim": 3, "sparse": False},
              {"name": "big", "size": 1000, "dim": 4, "sparse": sparse}]
    return build_model(model_spec(ModelConfig(hidden=[8]), 2, 2, embeddings=tables))


def test_sparse_tables_update_only_the_rows_a_batch_touched(hvd):
    torch.manual_seed(0)
    model = _embedding_mlp(sparse=True)
    opt = distributed_optimizer(model, "adam", 0.01, 0.0, "none", 1)
    assert isinstance(opt, OptimizerGroup)
    assert [type(m).__mro__[1] for m in opt.members] == [torch.optim.Adam, torch.optim.SparseAdam]
    HorovodBackend().broadcast_optimizer(opt)
    big = model.embeddings[1].weight
    before = big.detach().clone()
    x, idx = torch.randn(16, 2), torch.stack([torch.randint(0, 10, (16,)), torch.randint(0, 50, (16,))], 1)
    for _ in range(3):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x, idx), torch.randint(0, 2, (16,))).backward()
        assert big.grad.is_sparse
        opt.step()
    changed = (big != before).any(1).nonzero().flatten()
    assert set(changed.tolist()) == set(idx[:, 1].tolist())  # the rest of the table untouched


def test_sparse_bags_step_apart_too_and_leave_their_padding_row(hvd):
    """Bags of ids and sparse vectors are ``EmbeddingBag`` tables: a large one takes sparse
    gradients like an ``Embedding``, and only the rows its items touched move."""
    torch.manual_seed(0)
    tables = [{"name": "bag", "size": 500, "dim": 3, "sparse": True, "items": 4},
              {"name": "tf", "size": 800, "dim": 3, "sparse": True, "items": 2, "weighted": True}]
    model = build_model(model_spec(ModelConfig(hidden=[8]), 2 + 2, 2, embeddings=tables))
    opt = distributed_optimizer(model, "adam", 0.01, 0.0, "none", 1)
    assert [type(m).__mro__[1] for m in opt.members] == [torch.optim.Adam, torch.optim.SparseAdam]
    before = [t.weight.detach().clone() for t in model.embeddings]
    bag = torch.tensor([[1, 7, 500, 500], [9, 500, 500, 500]])
    tf = torch.tensor([[3, 799], [800, 800]])
    x = torch.cat([torch.randn(2, 2), torch.tensor([[0.5, 2.0], [0.0, 0.0]])], dim=1)
    for _ in range(2):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x, torch.cat([bag, tf], 1)), torch.tensor([0, 1])).backward()
        assert all(t.weight.grad.is_sparse for t in model.embeddings)
        opt.step()
    moved = [set((t.weight != b).any(1).nonzero().flatten().tolist()) for t, b in zip(model.embeddings, before)]
    assert moved == [{1, 7, 9}, {3, 799}]


def test_the_pair_acts_as_one_optimizer_for_schedules_and_checkpoints(hvd):
    model = _embedding_mlp(sparse=True)
    opt = distributed_optimizer(model, "sgd", 0.1, 0.0, "none", 1)
    for group in opt.param_groups:  # what the learning-rate schedule does
        group["lr"] = 0.05
    assert [g["lr"] for m in opt.members for g in m.param_groups] == [0.05, 0.05]
    x, idx = torch.randn(4, 2), torch.zeros(4, 2, dtype=torch.long)
    model(x, idx).sum().backward()
    opt.step()
    state = opt.state_dict()
    fresh = distributed_optimizer(model, "sgd", 0.1, 0.0, "none", 1)
    fresh.load_state_dict(state)
    assert [g["lr"] for g in fresh.param_groups] == [0.05, 0.05]
    assert fresh.members[1].state_dict()["state"].keys() == state["members"][1]["state"].keys() != set()


def test_without_sparse_tables_one_distributed_optimizer(hvd):
    opt = distributed_optimizer(_embedding_mlp(sparse=False), "adamw", 0.01, 0.01, "fp16", 2)
    assert not isinstance(opt, OptimizerGroup) and type(opt).__mro__[1] is torch.optim.AdamW


def test_the_local_pair_for_backends_that_exchange_in_backward():
    """DDP averages gradients in backward: its optimizers are the plain pair."""
    opt = local_optimizer(_embedding_mlp(sparse=True), "adam", 0.01, 0.0)
    assert isinstance(opt, OptimizerGroup)
    assert [type(m) for m in opt.members] == [torch.optim.Adam, torch.optim.SparseAdam]
    assert type(local_optimizer(_embedding_mlp(sparse=False), "sgd", 0.1, 0.0)) is torch.optim.SGD
