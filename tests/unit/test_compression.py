"""The torch backend's compression hooks and local SGD averagers on two real Gloo
processes (no Spark): what top-k and the casts deliver, and that a model rebuilt from
the saved per-rank state continues exactly where the uninterrupted one went."""
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from sparkdl.core.config.train import AllreduceConfig, LocalSgdConfig, PowerSgdConfig, TopkConfig
from tests.e2e.spark_processes import free_port


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(12, 32), torch.nn.ReLU(), torch.nn.Dropout(0.2),
                               torch.nn.Linear(32, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))


def _batches(rank: int, steps: int):
    g = torch.Generator().manual_seed(100 + rank)
    return [(torch.randn(16, 12, generator=g), torch.randint(0, 3, (16,), generator=g)) for _ in range(steps)]


def _train(backend, net, model, opt, batches):
    for i, (x, y) in enumerate(batches):
        if i == 0:
            backend.settle(model, [x])
        with backend.backward(model, True):
            torch.nn.functional.cross_entropy(model(x), y).backward()
        backend.step(opt, None)
        opt.zero_grad()


def _fresh(settings):
    from sparkdl.training.backends.torchdist import TorchBackend

    backend = TorchBackend()
    backend._hosts = ",".join(f"h{i}:2" for i in range(dist.get_world_size() // 2))
    net = _net()
    model, opt = backend.prepare(net, settings, 0.01, torch.device("cpu"))
    return backend, net, model, opt


def _resume_case(rank, port, settings, out, world=2):
    """Train 6 steps straight; then 3 steps, save, rebuild from the save, 3 more: the
    same parameters, bit for bit."""
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        torch.manual_seed(rank)
        batches = _batches(rank, 6)
        backend, net, model, opt = _fresh(settings)
        _train(backend, net, model, opt, batches)
        straight = [p.detach().clone() for p in net.parameters()]

        torch.manual_seed(rank)
        backend, net, model, opt = _fresh(settings)
        _train(backend, net, model, opt, batches[:3])
        saved = {"model": {k: v.clone() for k, v in net.state_dict().items()}, "optimizer": opt.state_dict(),
                 "rng": torch.get_rng_state(), **backend.rank_state(opt)}
        backend, net, model, opt = _fresh(settings)
        net.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        torch.set_rng_state(saved["rng"])
        backend.load_rank_state(opt, saved)
        _train(backend, net, model, opt, batches[3:])
        out[rank] = all(torch.equal(a, b) for a, b in zip(straight, net.parameters()))
    finally:
        dist.destroy_process_group()


def _settings(**allreduce):
    local = allreduce.pop("local_sgd", None)
    return SimpleNamespace(allreduce=AllreduceConfig(**allreduce), seed=0, local_sgd=local,
                           optimizer=SimpleNamespace(name="adam", weight_decay=0.0),
                           ddp_settings=SimpleNamespace(bucket_cap_mb=0.002), strategy="ddp")


@pytest.mark.parametrize("case", [
    {"compression": "powersgd", "powersgd": PowerSgdConfig(rank=2, start_step=2)},
    {"compression": "topk", "topk": TopkConfig(ratio=0.1, start_step=1)},
    {"compression": "bf16"},
    {"local_sgd": LocalSgdConfig(period=2, warmup_steps=1)},
], ids=["powersgd", "topk", "bf16", "local_sgd"])
def test_a_rebuilt_model_with_the_saved_rank_state_continues_exactly(case):
    out = mp.Manager().dict()
    mp.start_processes(_resume_case, args=(free_port(), _settings(**case), out), nprocs=2, start_method="spawn")
    assert dict(out) == {0: True, 1: True}


def test_hierarchical_local_sgd_averages_within_hosts_and_resumes_exactly():
    """Four ranks as two hosts of two: torch's hierarchical averager on host groups."""
    out = mp.Manager().dict()
    settings = _settings(local_sgd=LocalSgdConfig(period=4, warmup_steps=1, host_period=2))
    mp.start_processes(_resume_case, args=(free_port(), settings, out, 4), nprocs=4, start_method="spawn")
    assert dict(out) == {0: True, 1: True, 2: True, 3: True}


def _topk_case(rank, port, out):
    from sparkdl.training.backends.compression import TopK

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        net = torch.nn.Linear(10, 1, bias=False)
        model = torch.nn.parallel.DistributedDataParallel(net)
        hook = TopK(ratio=0.2, error_feedback=True, start_step=0)
        hook.register(model)
        grad = torch.zeros(10)
        grad[rank] = 5.0 + rank  # each rank's largest entry
        grad[9] = 0.5
        x = grad.unsqueeze(0)  # d(sum(w·x))/dw = x
        model(x).sum().backward()
        out[rank] = (net.weight.grad.squeeze(0).tolist(), hook.errors[0].tolist())
    finally:
        dist.destroy_process_group()


def test_topk_sends_each_ranks_largest_entries_and_keeps_the_rest():
    out = mp.Manager().dict()
    mp.start_processes(_topk_case, args=(free_port(), out), nprocs=2, start_method="spawn")
    for rank in (0, 1):
        averaged, error = out[rank]
        # k = 2 of 10: each rank sends its own large entry and the 0.5; the average of both
        assert averaged[:2] == [2.5, 3.0] and averaged[9] == 0.5 and sum(map(abs, averaged[2:9])) == 0
        assert sum(map(abs, error)) == 0  # nothing was left out


def test_hierarchical_averaging_needs_as_many_ranks_on_every_host():
    from sparkdl.training.backends.local_sgd import host_groups

    assert host_groups("a:2,b:2") == 2
    with pytest.raises(ValueError, match=r"train.local_sgd.host_period .* the plan is a:2,b:1"):
        host_groups("a:2,b:1")


def test_a_large_buckets_top_k_through_the_sampled_threshold_is_the_exact_top_k():
    from sparkdl.training.backends.compression import SAMPLED_FROM, largest

    g = torch.Generator().manual_seed(3)
    for n, k in ((SAMPLED_FROM * 3, 2_000), (SAMPLED_FROM, 1), (1_000, 10)):
        magnitudes = torch.randn(n, generator=g).abs()
        picked = largest(magnitudes, k)
        assert len(picked) == k
        assert set(picked.tolist()) == set(magnitudes.topk(k).indices.tolist())
