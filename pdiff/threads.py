"""How many CPU threads a forward pass gets: few runs x threads, never more than the cores.

torch's default gives every forward every core. With two runs at once, or a machine shared with
other jobs, the runs' thread teams then fight for the same cores and a 1-token step can take 10x
longer (issue 13). `ThreadPolicy` chooses instead: each of `runs` concurrent runs owns
`cores // runs` threads, and uses more than one only for a forward over at least `wide` tokens
(a denoise step over the spans), where splitting the work pays; a 1-token plan or AR step runs on
one thread. A run's forwards are sequential, so runs x threads never exceeds the cores.

`apply` sets the calling thread's count just before a forward. torch keeps that count per OS
thread once the thread has initialised its pool (which `apply` makes sure of first), so two runs
in two worker threads do not change each other's. This module knows nothing of models or apps.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

WIDE_TOKENS = 32  # a forward over fewer tokens than this is one thread's work (see `wide`)


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity), not the machine's total."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class ThreadPolicy:
    """Threads per forward for `runs` concurrent runs on `cores` cores."""

    cores: int  # CPU cores this process may use
    runs: int  # runs that may execute at once (the app's concurrency; 1 for the CLI)
    wide: int = WIDE_TOKENS  # forwards over at least this many tokens may use several threads
    parallel: bool = True  # False: every forward on one thread (several threads did not pay)

    def __post_init__(self) -> None:
        for name in ("cores", "runs", "wide"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ThreadPolicy.{name} must be a whole number >= 1, got {value!r}")

    @property
    def per_run(self) -> int:
        """The threads one run may use: its share of the cores, at least one."""
        return max(1, self.cores // self.runs) if self.parallel else 1

    def threads_for(self, tokens: int) -> int:
        """Threads for a forward over `tokens` query tokens."""
        return self.per_run if tokens >= self.wide else 1

    def apply(self, tokens: int) -> int:
        """Set the calling thread's torch thread count for a forward over `tokens`; return it."""
        n = self.threads_for(tokens)
        if torch.get_num_threads() != n:  # the call also initialises this thread's pool first
            torch.set_num_threads(n)
        return n

    def describe(self) -> str:
        """The policy in words, for the start-up log and the page."""
        if self.per_run == 1:
            return f"1 thread per forward ({self.runs} run(s) at once on {self.cores} core(s))"
        return (f"{self.per_run} threads for a forward over {self.wide}+ tokens, 1 for narrower ones "
                f"({self.runs} run(s) at once on {self.cores} cores)")
