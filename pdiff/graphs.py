"""Static-shape forwards, captured as CUDA graphs on a GPU: the AR step and the denoise step.

An eager 7B forward dispatches about 1,600 ops from the host, and on a GPU that, not HBM, sets
the pace (docs/performance.md). A CUDA graph replays the whole forward as one launch, but it
needs static shapes and fixed addresses, so `Graphs` owns one KV cache of fixed size and one set
of input buffers per width bucket:
- keys: always the whole cache, `max_len` committed slots plus one scratch slot per row of the
  widest bucket. A query sees only what the layout's visibility says (spec section 3); a padded
  row writes its key to its own scratch slot and sees only that, so it never touches a real slot
  and never leaves a row with nothing to attend to.
- queries: a forward of T tokens runs in the smallest bucket of at least T rows, padded with
  id 0 at position 0; its first T rows of logits are the answer.
The cache is lent to one run at a time (`new_cache`); a run that finds it lent, that needs more
than `max_len` positions, or a forward wider than every bucket, runs eager, as on the CPU. On a
CPU the same static path runs without capture: that is how the tests check it (padding and
masking give the dynamic path's ids) on a machine without a GPU.

This module knows nothing about tags, plans or sampling: it has the model's call signature, and
the engine calls it where it would call the model.
"""

from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass

import torch

from pdiff.model import DreamModel, KVCache

# Width buckets: 1 for the AR step; the rest hold prompts, forced plans, a sync's refresh and
# denoise steps. 72/136/200/264 fit 1 to 4 blocks of 64 tokens with their tags (66 each) and a
# `<sync/>`, so the bench's 3 x 64 step pads 198 rows to 200.
WIDTHS = (1, 4, 16, 32, 64, 72, 136, 200, 264)
MAX_LEN = 2048  # committed slots of the static cache; a longer run is eager
WARMUP = 2  # eager runs of a bucket on a side stream before its capture (CUDA graphs notes)


class StaticCache(KVCache):
    """A KVCache over `Graphs`' buffers: the eager path reads and writes it as any other."""

    def __init__(self, k: torch.Tensor, v: torch.Tensor, max_len: int) -> None:
        self.k, self.v = k, v  # (layers, 1, Hkv, max_len + scratch, D)
        self.max_len = max_len
        self.length = 0


@dataclass
class Bucket:
    """One width's static inputs and output; `graph` is None where nothing was captured."""

    width: int
    ids: torch.Tensor  # (1, W)
    positions: torch.Tensor  # (W,) RoPE positions; padding: 0
    slots: torch.Tensor  # (W,) cache slot each row writes; padding: its scratch slot
    mask: torch.Tensor  # (1, 1, W, K) bool visibility over every cache slot
    pad_mask: torch.Tensor  # (W, K) each row sees its own scratch slot only
    scratch: torch.Tensor  # (W,) the scratch slots
    logits: torch.Tensor | None = None  # (1, W, V) the output the graph writes
    graph: torch.cuda.CUDAGraph | None = None


class Graphs:
    """Static-shape forwards of `model` over one lent cache; captured on CUDA."""

    def __init__(self, model: DreamModel, max_len: int = MAX_LEN, widths: tuple[int, ...] = WIDTHS,
                 capture: bool | None = None) -> None:
        cfg, p = model.config, model.lm_head.weight
        if not widths or min(widths) < 1:
            raise ValueError(f"widths must be positive, got {widths}")
        self.model, self.config = model, cfg
        self.widths = tuple(sorted(set(widths)))
        self.max_len = min(max_len, cfg.max_position_embeddings)
        self.keys = self.max_len + self.widths[-1]  # K: committed slots, then scratch
        shape = (cfg.num_hidden_layers, 1, cfg.num_key_value_heads, self.keys, cfg.head_dim)
        self.k = torch.zeros(shape, device=p.device, dtype=p.dtype)
        self.v = torch.zeros(shape, device=p.device, dtype=p.dtype)
        self._whole = StaticCache(self.k, self.v, self.keys)  # what a static forward reads
        self.capture = p.device.type == "cuda" if capture is None else capture
        self.capture_seconds: dict[int, float] = {}  # width -> seconds its capture took
        self.counts = {"static": 0, "eager": 0}  # forwards on each path, every run together
        self._buckets: dict[int, Bucket] = {}
        self._lent: weakref.ref | None = None
        self._lock = threading.Lock()

    @property
    def capture_total(self) -> float:
        """Seconds spent capturing so far, every bucket together (0.0 on a CPU)."""
        return sum(self.capture_seconds.values())

    def bucket(self, width: int) -> int | None:
        """The smallest bucket of at least `width` rows; None when wider than every bucket."""
        return next((w for w in self.widths if w >= width), None)

    def new_cache(self, capacity: int) -> KVCache:
        """The static cache, nothing committed, if it is free and holds `capacity`; else an
        eager cache. Old keys stay in its slots: no query sees a slot before it is written."""
        with self._lock:  # runs on several threads: one of them gets it
            if capacity <= self.max_len and (self._lent is None or self._lent() is None):
                cache = StaticCache(self.k, self.v, self.max_len)
                self._lent = weakref.ref(cache)  # free again once the run drops it
                return cache
        return self.model.new_cache(capacity)

    def prepare(self) -> float:
        """Build (and on CUDA capture) every bucket now, at load; the seconds it took."""
        t = time.perf_counter()
        for w in self.widths:
            self._get(w)
        return time.perf_counter() - t

    def __call__(self, ids: torch.Tensor, positions: torch.Tensor, visibility: torch.Tensor,
                 cache: KVCache | None = None, start: int = 0, commit: bool = False) -> torch.Tensor:
        """DreamModel's forward: on the static path when it can, eager otherwise."""
        t = ids.shape[1]
        width = self.bucket(t)
        static = (isinstance(cache, StaticCache) and cache.k is self.k and width is not None
                  and ids.shape[0] == 1 and positions.dim() == 1 and visibility.dim() == 2)
        self.counts["static" if static else "eager"] += 1
        if not static:
            return self.model(ids, positions, visibility, cache, start, commit)
        if start + t > cache.max_len:
            raise ValueError(f"cache holds {cache.max_len} positions, asked for {start + t}")
        b = self._get(width)
        self._fill(b, ids[0], positions, visibility, start)
        if b.graph is not None:
            b.graph.replay()
        else:
            b.logits = self._run(b)
        if commit:
            cache.length = start + t
        return b.logits[:, :t].clone()  # (1, T, V); the bucket's next replay overwrites b.logits

    # --- inside ------------------------------------------------------------------------------

    def _run(self, b: Bucket) -> torch.Tensor:
        """The static forward itself: the model's own, over the whole cache, its rows written at
        the bucket's slots (every op on fixed shapes and fixed buffers)."""
        return self.model(b.ids, b.positions, b.mask, self._whole, b.slots)  # (1, W, V)

    def _fill(self, b: Bucket, ids: torch.Tensor, positions: torch.Tensor,
              visibility: torch.Tensor, start: int) -> None:
        """Copy one forward's T rows into the bucket's buffers; rows past T are padding.
        Slices by host integers only: nothing here waits on the device."""
        t, dev = ids.shape[0], ids.device
        b.ids.zero_()
        b.ids[0, :t] = ids
        b.positions.zero_()
        b.positions[:t] = positions
        b.slots.copy_(b.scratch)
        b.slots[:t] = torch.arange(start, start + t, device=dev)
        mask = b.mask[0, 0]  # (W, K)
        mask.copy_(b.pad_mask)
        mask[:t] = False
        mask[:t, :start + t] = visibility  # (T, start + T): the cached prefix, then these rows

    def _get(self, width: int) -> Bucket:
        if width not in self._buckets:
            self._buckets[width] = self._build(width)
        return self._buckets[width]

    def _build(self, width: int) -> Bucket:
        """A bucket's buffers, every row padding; captured at once on CUDA."""
        dev = self.k.device
        scratch = torch.arange(self.max_len, self.max_len + width, device=dev)
        pad_mask = torch.zeros(width, self.keys, dtype=torch.bool, device=dev)
        pad_mask[torch.arange(width, device=dev), scratch] = True
        zeros = lambda *shape: torch.zeros(shape, dtype=torch.long, device=dev)  # noqa: E731
        b = Bucket(width, zeros(1, width), zeros(width), scratch.clone(),
                   pad_mask.clone()[None, None], pad_mask, scratch)
        if self.capture:
            self._capture(b)
        return b

    def _capture(self, b: Bucket) -> None:
        """Warm up on a side stream, then record the forward into one CUDA graph. The bucket's
        rows are all padding meanwhile, so only scratch slots are written."""
        t = time.perf_counter()
        side = torch.cuda.Stream(device=self.k.device)
        side.wait_stream(torch.cuda.current_stream(self.k.device))
        with torch.inference_mode():
            with torch.cuda.stream(side):
                for _ in range(WARMUP):
                    self._run(b)
            torch.cuda.current_stream(self.k.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            # Its own memory pool: buckets replay in any order, which a shared pool does not allow.
            with torch.cuda.graph(graph):
                b.logits = self._run(b)
        torch.cuda.synchronize(self.k.device)
        b.graph = graph
        self.capture_seconds[b.width] = time.perf_counter() - t
