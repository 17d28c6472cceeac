"""Peak memory of a training step: the tensors a model needs (parameters, gradients, optimiser state,
activations at their peak) and, beside it, the process's peak resident memory.

The two differ on the CPU by far: a run's resident memory counts the memory-mapped feature cache and the
libraries (3-6 GB for arms whose weights are under 1 MB), the tensor peak is what the paper's memory column
means. On a GPU the tensor peak is the allocator's (`torch.cuda.max_memory_allocated`); on the CPU, which
keeps no allocator statistics, it is followed storage by storage (`LiveBytes`).
"""
from __future__ import annotations

import contextlib
import resource
import sys
import weakref
from typing import Iterable, Iterator

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.weak import WeakIdKeyDictionary


def peak_rss_mb() -> float:
    """The process's peak resident memory so far (MiB)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


class LiveBytes(TorchDispatchMode):
    """Peak bytes of live tensor storage: the storages of `existing` tensors plus every storage an operation
    creates while the mode is on (forward, backward, optimiser), each counted until it is freed.

    The CPU keeps no allocator statistics; this follows storages the way torch's `MemTracker` does (whose
    module hooks refuse frozen parameters), without per-module attribution. Slow: use it on an untimed call.
    """

    def __init__(self, existing: Iterable[torch.Tensor] = ()) -> None:
        super().__init__()
        self._seen: WeakIdKeyDictionary = WeakIdKeyDictionary()
        self.live = 0
        for t in existing:
            self._track(t)
        self.peak = self.live

    def _release(self, nbytes: int) -> None:
        self.live -= nbytes

    def _track(self, t: torch.Tensor) -> None:
        if t.device.type == "meta" or t.is_sparse:
            return
        st = t.untyped_storage()
        if st in self._seen:
            return
        nbytes = st.nbytes()
        self._seen[st] = nbytes
        self.live += nbytes
        weakref.finalize(st, self._release, nbytes)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self._track(t)
        self.peak = max(self.peak, self.live)
        return out


def _state_tensors(objs: Iterable[object]) -> Iterator[torch.Tensor]:
    """Parameters, gradients and buffers of modules; states of optimisers."""
    for obj in objs:
        if isinstance(obj, torch.nn.Module):
            for p in obj.parameters():
                yield p
                if p.grad is not None:
                    yield p.grad
            yield from obj.buffers()
        elif isinstance(obj, torch.optim.Optimizer):
            for state in obj.state.values():
                yield from (v for v in state.values() if isinstance(v, torch.Tensor))


def _storage_bytes(tensors: Iterable[torch.Tensor], device: torch.device) -> int:
    seen: dict[int, int] = {}
    for t in tensors:
        if t.device == device:
            st = t.untyped_storage()
            seen[st.data_ptr()] = st.nbytes()
    return sum(seen.values())


@contextlib.contextmanager
def peak_memory(device: torch.device, *tracked: object) -> Iterator[dict[str, float]]:
    """Peak tensor memory (MiB) of one call: the existing tensors of `tracked` (modules: parameters,
    gradients, buffers; optimisers: states) plus the most the block allocates on top (activations, new
    gradients and states, temporaries); into the yielded dict's "mb".

    Other arms' tensors on the device are left out, so arms built side by side are measured as if alone.
    On a GPU: the rise of `torch.cuda.max_memory_allocated` during the block. On the CPU, which keeps no
    allocator statistics: `LiveBytes`.
    """
    out: dict[str, float] = {}
    if device.type == "cuda":
        device = torch.device("cuda", torch.cuda.current_device()) if device.index is None else device
        own = _storage_bytes(_state_tensors(tracked), device)
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        yield out
        torch.cuda.synchronize(device)
        out["mb"] = (own + torch.cuda.max_memory_allocated(device) - before) / 2**20
        return
    mode = LiveBytes(_state_tensors(tracked))
    with mode:
        yield out
    out["mb"] = mode.peak / 2**20
