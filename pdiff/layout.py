"""The sequence of one run and who may attend to whom (spec section 3).

Every position carries three integers, and a query at q sees a key at k when
    k < pre[q]   or   lo[q] <= k < hi[q]
- an AR token (prompt, plan, `<sync/>`): pre = q + 1, lo = hi = 0, so it is causal;
- a span token: pre = first position of its round's blocks (it sees the whole prefix), and
  [lo, hi) is its own block (sparse) or all blocks of its round (dense).
This one rule gives every mask the engine needs, cached or not, and the training objective
builds its sequences with it too (`causal_rule`, `block_rule`, `visible`). Positions are plain
absolute indices for RoPE. The layout knows nothing about tags or sampling.
"""

from __future__ import annotations

import torch


def causal_rule(start: int, n: int) -> tuple[list[int], list[int], list[int]]:
    """(pre, lo, hi) of n AR tokens at start..: each sees everything before it and itself."""
    return list(range(start + 1, start + n + 1)), [0] * n, [0] * n


def block_rule(start: int, lengths: list[int], dense: bool) -> tuple[list[int], list[int], list[int]]:
    """(pre, lo, hi) of one round's blocks of `lengths` at start..: each sees the whole prefix,
    and its own block (sparse) or every block of the round (dense)."""
    end = start + sum(lengths)
    pre, lo, hi, at = [start] * (end - start), [], [], start
    for n in lengths:
        lo += [start if dense else at] * n
        hi += [end if dense else at + n] * n
        at += n
    return pre, lo, hi


def visible(keys: torch.Tensor, pre: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """The rule itself, broadcast: may a query with (pre, lo, hi) see key position `keys`."""
    return (keys < pre) | ((keys >= lo) & (keys < hi))


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
        self._append(ids, causal_rule(self.length, len(ids)))

    def append_blocks(self, blocks: list[list[int]], dense: bool) -> list[tuple[int, int]]:
        """Append the span blocks of one round; return each block's [start, end) positions."""
        start, ranges = self.length, []
        for block in blocks:
            at = ranges[-1][1] if ranges else start
            ranges.append((at, at + len(block)))
        self._append([t for b in blocks for t in b], block_rule(start, [len(b) for b in blocks], dense))
        return ranges

    def visibility(self, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """Bool (T, S): may query position queries[t] see key position keys[s]."""
        return visible(keys[None, :], self.pre[queries, None], self.lo[queries, None],
                       self.hi[queries, None])  # (T, S)

    def tokens(self, start: int = 0, end: int | None = None) -> list[int]:
        return self.ids[start:self.length if end is None else end].tolist()

    def _append(self, ids: list[int], rule: tuple[list[int], list[int], list[int]]) -> None:
        n, end = self.length, self.length + len(ids)
        self._check(end)
        for row, values in zip((self.ids, self.pre, self.lo, self.hi), (ids, *rule)):
            row[n:end] = torch.tensor(values, dtype=torch.long)
        self.length = end

    def _check(self, end: int) -> None:
        if end > self.capacity:
            raise ValueError(f"sequence of {end} tokens exceeds the run's capacity {self.capacity}")
