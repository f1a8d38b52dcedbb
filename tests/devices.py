"""The devices the device tests run on, and two probes: host copies and tensor placement.

`DEVICES` parametrises a test over "cpu" and "cuda"; the cuda leg carries the `gpu` marker and
is skipped with the reason "no CUDA device" where there is none, so `pytest -m gpu` selects
exactly the CUDA legs. The CPU leg runs everywhere and shows that each check can fail.

`HostCopies` counts device-to-host copies two ways:
- Python-level reads of a tensor's values on the host (`tolist`, `item`, `bool()`, `int()`,
  `float()`, `cpu`, `numpy`, `nonzero`, boolean-mask indexing). These are copies on a GPU, so the
  count means the same on CPU, where nothing is copied.
- On CUDA, torch's sync debug mode, which warns at every synchronising copy, also the ones inside
  torch's own C++ (for example the validity checks of `torch.multinomial`).

`Placement` records the device of every tensor a torch function takes or returns.
"""

from __future__ import annotations

import warnings
from collections import Counter

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

NO_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
CUDA = pytest.param("cuda", marks=[pytest.mark.gpu, NO_CUDA], id="cuda")
DEVICES = [pytest.param("cpu", id="cpu"), CUDA]

# Tensor methods that read values on the host (a device-to-host copy on a GPU).
READS = ("tolist", "item", "cpu", "numpy", "nonzero", "masked_select",
         "__bool__", "__int__", "__float__", "__index__")


def _has_bool_index(index) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, torch.Tensor) and p.dtype == torch.bool for p in parts)


class HostCopies:
    """Context manager: `reads` (Python-level) and `syncs` (CUDA sync debug mode) so far."""

    def __init__(self, device: str) -> None:
        self.cuda = torch.device(device).type == "cuda"
        self.reads = 0
        self._patch = pytest.MonkeyPatch()
        self._warnings = None
        self._caught: list = []

    @property
    def syncs(self) -> int:
        return sum("synchroniz" in str(w.message) for w in self._caught)

    def __enter__(self) -> HostCopies:
        def counting(original, when=None):
            def wrapper(*args, **kwargs):
                if when is None or when(*args):
                    self.reads += 1
                return original(*args, **kwargs)
            return wrapper

        for name in READS:
            self._patch.setattr(torch.Tensor, name, counting(getattr(torch.Tensor, name)))
        for name in ("nonzero", "masked_select"):
            self._patch.setattr(torch, name, counting(getattr(torch, name)))
        for name in ("__getitem__", "__setitem__"):
            self._patch.setattr(torch.Tensor, name, counting(
                getattr(torch.Tensor, name), lambda tensor, index, *value: _has_bool_index(index)))
        if self.cuda:
            self._warnings = warnings.catch_warnings(record=True)
            self._caught = self._warnings.__enter__()
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
        return self

    def __exit__(self, *exc) -> None:
        if self.cuda:
            torch.cuda.set_sync_debug_mode("default")
            self._warnings.__exit__(*exc)
        self._patch.undo()


class Placement(TorchFunctionMode):
    """Records (function name, device) for every tensor argument and result off `device`."""

    def __init__(self, device) -> None:
        super().__init__()
        self.device = torch.device(device)
        self.elsewhere: Counter = Counter()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.calls += 1
        leaves, _ = tree_flatten((args, kwargs or {}, out))
        for t in leaves:
            if isinstance(t, torch.Tensor) and not _same(t.device, self.device):
                self.elsewhere[(getattr(func, "__name__", str(func)), str(t.device))] += 1
        return out


def _same(a: torch.device, b: torch.device) -> bool:
    """cuda and cuda:0 are the same device when the current device is 0."""
    index = lambda d: d.index if d.index is not None else (
        torch.cuda.current_device() if d.type == "cuda" else None)
    return a.type == b.type and index(a) == index(b)
