"""The sequence of one run and who may attend to whom (spec section 3).

Every position carries three integers, and a query at q sees a key at k when
    k < pre[q]   or   lo[q] <= k < hi[q]
- an AR token (prompt, plan, `<sync/>`): pre = q + 1, lo = hi = 0, so it is causal;
- a span token: pre = first position of its round's blocks (it sees the whole prefix), and
  [lo, hi) is its own block (sparse) or all blocks of its round (dense).
This one rule gives every mask the engine needs, cached or not. Positions are plain absolute
indices for RoPE. The layout knows nothing about tags or sampling.
"""

from __future__ import annotations

import torch


class Layout:
    """Ids plus (pre, lo, hi) per position, preallocated for the whole run."""

    def __init__(self, capacity: int, device) -> None:
        self.ids = torch.zeros(capacity, dtype=torch.long, device=device)
        self.pre = torch.zeros(capacity, dtype=torch.long, device=device)
        self.lo = torch.zeros(capacity, dtype=torch.long, device=device)
        self.hi = torch.zeros(capacity, dtype=torch.long, device=device)
        self.capacity = capacity
        self.length = 0

    def append_causal(self, ids: list[int]) -> None:
        """Append AR tokens: each sees everything before it and itself."""
        n, end = self.length, self.length + len(ids)
        self._check(end)
        self.ids[n:end] = torch.tensor(ids, dtype=torch.long)
        self.pre[n:end] = torch.arange(n + 1, end + 1)
        self.lo[n:end] = 0
        self.hi[n:end] = 0
        self.length = end

    def append_blocks(self, blocks: list[list[int]], dense: bool) -> list[tuple[int, int]]:
        """Append the span blocks of one round; return each block's [start, end) positions."""
        round_start = self.length
        total = sum(len(b) for b in blocks)
        self._check(round_start + total)
        ranges, at = [], round_start
        for block in blocks:
            end = at + len(block)
            self.ids[at:end] = torch.tensor(block, dtype=torch.long)
            self.pre[at:end] = round_start
            self.lo[at:end] = round_start if dense else at
            self.hi[at:end] = round_start + total if dense else end
            ranges.append((at, end))
            at = end
        self.length = at
        return ranges

    def visibility(self, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """Bool (T, S): may query position queries[t] see key position keys[s]."""
        k = keys[None, :]  # (1, S)
        pre, lo, hi = self.pre[queries, None], self.lo[queries, None], self.hi[queries, None]
        return (k < pre) | ((k >= lo) & (k < hi))  # (T, S)

    def tokens(self, start: int = 0, end: int | None = None) -> list[int]:
        return self.ids[start:self.length if end is None else end].tolist()

    def _check(self, end: int) -> None:
        if end > self.capacity:
            raise ValueError(f"sequence of {end} tokens exceeds the run's capacity {self.capacity}")
