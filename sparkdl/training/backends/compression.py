"""Gradient compression on the torch backend's DDP: one communication hook per
``train.allreduce.compression`` (fp16 and bf16 casts, PowerSGD's low-rank factors,
top-k sparsification), and the state a hook carries from step to step.

That state (error feedback, PowerSGD's factors and step count) belongs to each rank and
is kept in every checkpoint, so a resumed run continues exactly. DDP regroups its
gradient buckets after its first backward pass, and the hooks keep their state per
bucket: a model rebuilt on resume runs one uncounted backward pass (:meth:`settle`)
before its first step, so its buckets are the ones the saved state was made for.
"""
from __future__ import annotations

from typing import Any, Dict, Optional


class Compressor:
    """A DDP communication hook and its per-rank state."""

    #: Whether the hook keeps state across steps (a resumed model must settle its buckets).
    stateful = False

    def __init__(self):
        self._paused = False

    def register(self, model) -> None:
        model.register_comm_hook(self, _dispatch)

    def hook(self, bucket):
        raise NotImplementedError

    def state_dict(self) -> Dict[str, Any]:
        return {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output."""

    def settle(self, model, inputs) -> None:
        """One backward pass on ``inputs`` that changes nothing (evaluation mode, the RNG
        and gradients restored, plain allreduce): afterwards DDP's buckets are grouped as
        they were when the state was saved."""
        import torch

        rng = torch.get_rng_state()
        training = model.training
        self._paused = True
        try:
            model.eval()
            out = model(*inputs)
            out.float().sum().backward()
        finally:
            self._paused = False
            model.train(training)
            torch.set_rng_state(rng)
            for p in model.parameters():
                p.grad = None


def _dispatch(compressor: Compressor, bucket):
    """The hook DDP calls with its state: the compressor's own, or plain allreduce while it settles."""
    return plain_allreduce(bucket) if compressor._paused else compressor.hook(bucket)


def plain_allreduce(bucket):
    """The bucket averaged over every rank (DDP's own default)."""
    import torch.distributed as dist

    tensor = bucket.buffer().div_(dist.get_world_size())
    return dist.all_reduce(tensor, async_op=True).get_future().then(lambda fut: fut.value()[0])


class Cast(Compressor):
    """Gradients sent as fp16 or bf16 and averaged in full precision (DDP's own hooks)."""

    def __init__(self, dtype: str):
        super().__init__()
        from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

        self._hook = {"fp16": default_hooks.fp16_compress_hook, "bf16": default_hooks.bf16_compress_hook}[dtype]

    def hook(self, bucket):
        return self._hook(None, bucket)


class PowerSgd(Compressor):
    """torch's ``powerSGD_hook``: each gradient matrix sent as two rank-``rank`` factors,
    with error feedback and warm start; plain allreduce before ``start_step``."""

    stateful = True

    def __init__(self, rank: int, start_step: int, error_feedback: bool, warm_start: bool, seed: int):
        super().__init__()
        from torch.distributed.algorithms.ddp_comm_hooks import powerSGD_hook as powersgd

        self._hook = powersgd.powerSGD_hook
        self.state = powersgd.PowerSGDState(process_group=None, matrix_approximation_rank=rank,
                                            start_powerSGD_iter=start_step, use_error_feedback=error_feedback,
                                            warm_start=warm_start, random_seed=seed)

    def hook(self, bucket):
        return self._hook(self.state, bucket)

    def state_dict(self) -> Dict[str, Any]:
        import torch

        s = self.state
        kind, keys, pos, has_gauss, gauss = s.rng.get_state()
        return {"iter": s.iter, "error": dict(s.error_dict), "p": dict(s.p_memory_dict), "q": dict(s.q_memory_dict),
                "rng": {"keys": torch.from_numpy(keys.astype("int64")), "pos": int(pos), "has_gauss": int(has_gauss),
                        "gauss": float(gauss)}}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        s = self.state
        s.iter = int(state["iter"])
        s.error_dict, s.p_memory_dict, s.q_memory_dict = dict(state["error"]), dict(state["p"]), dict(state["q"])
        r = state["rng"]
        s.rng.set_state(("MT19937", r["keys"].numpy().astype("uint32"), r["pos"], r["has_gauss"], r["gauss"]))


class TopK(Compressor):
    """Top-k sparsification with error feedback (Deep Gradient Compression's core): after
    ``start_step`` steps of plain allreduce, each rank sends the ``ratio`` largest entries
    of each bucket, as int32 indices and fp32 values in one ``all_gather``, and keeps what
    it did not send for its next step."""

    stateful = True

    def __init__(self, ratio: float, error_feedback: bool, start_step: int):
        super().__init__()
        self.ratio, self.error_feedback, self.start_step = ratio, error_feedback, start_step
        self.errors: Dict[int, Any] = {}
        self.steps = 0

    def hook(self, bucket):
        import torch
        import torch.distributed as dist

        if self.steps < self.start_step:  # a warm-up of plain allreduce, as for PowerSGD
            if bucket.is_last():
                self.steps += 1
            return plain_allreduce(bucket)
        grad = bucket.buffer()
        index = bucket.index()
        error = self.errors.get(index)
        if error is not None and error.numel() == grad.numel():
            grad.add_(error)
        k = max(1, int(round(self.ratio * grad.numel())))
        picked = largest(grad.abs(), k)
        values = grad[picked].float()
        if self.error_feedback:
            self.errors[index] = grad.index_fill(0, picked, 0)
        world = dist.get_world_size()
        mine = torch.cat([picked.to(torch.int32), values.view(torch.int32)])
        everyone = torch.empty(world * 2 * k, dtype=torch.int32)
        if bucket.is_last():
            self.steps += 1

        def scatter_back(fut):
            fut.value()  # a peer's failure surfaces here, as the collective's own error
            parts = everyone.view(world, 2, k)
            grad.zero_().index_add_(0, parts[:, 0].reshape(-1).long(),
                                    parts[:, 1].reshape(-1).view(torch.float32).to(grad.dtype))
            return grad.div_(world)

        return dist.all_gather_into_tensor(everyone, mine, async_op=True).get_future().then(scatter_back)

    def state_dict(self) -> Dict[str, Any]:
        return {"steps": self.steps, "errors": dict(self.errors)}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.steps, self.errors = int(state["steps"]), dict(state["errors"])


#: Buckets from this many entries choose their top k through a sampled threshold.
SAMPLED_FROM = 100_000
#: One entry in this many is in the sample.
SAMPLE_STRIDE = 101


def largest(magnitudes, k: int):
    """Indices of the ``k`` largest ``magnitudes``. A full top-k over millions of entries
    costs more than the exchange it saves; as Deep Gradient Compression does, a large
    bucket takes a threshold from a strided sample (no RNG, so a resumed run picks the
    same entries), set a little low so that at least ``k`` pass, and the exact top k of
    those that pass (a full top-k when too few do)."""
    n = magnitudes.numel()
    if n < SAMPLED_FROM or k * 4 > n:
        return magnitudes.topk(k, sorted=False).indices
    sample = magnitudes[::SAMPLE_STRIDE]
    above = min(sample.numel(), 2 + (5 * k * sample.numel()) // (4 * n))
    threshold = sample.topk(above, sorted=False).values.min()
    passed = (magnitudes >= threshold).nonzero().squeeze(1)
    if passed.numel() < k:
        return magnitudes.topk(k, sorted=False).indices
    return passed[magnitudes[passed].topk(k, sorted=False).indices]


def compressor(allreduce, seed: int) -> Optional[Compressor]:
    """The hook ``train.allreduce`` asks for, or None (``none``: DDP's own allreduce)."""
    method = allreduce.compression
    if method in ("fp16", "bf16"):
        return Cast(method)
    if method == "powersgd":
        p = allreduce.powersgd_settings
        return PowerSgd(p.rank, p.start_step, p.error_feedback, p.warm_start, seed)
    if method == "topk":
        k = allreduce.topk_settings
        return TopK(k.ratio, k.error_feedback, k.start_step)
    return None

