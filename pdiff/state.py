"""The state of one generation: its sequence, cache, clock and counters, and one round's scaffold.

`Run` is what the engine's loops share while a run streams; when it ends, `Run.finished()` adds
the counters up to the Finished event and its Stats (critical path, tokens per forward, mean
confidence). `Round` is what 2) scaffold hands to 3) denoise: where a round's blocks sit and
which slots are masked. Both are engine-internal and never leave it: events carry plain data.
This module knows nothing about the model, sampling or tags.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from pdiff.config import GenerationConfig
from pdiff.events import Finished, PlanItem, Stats
from pdiff.layout import Layout
from pdiff.model import KVCache
from pdiff.plan import PlanRound, join_spans


@dataclass
class Run:
    """Mutable state of one generation: the sequence, the cache, the clock and the counters."""

    config: GenerationConfig
    layout: Layout
    cache: KVCache | None
    generator: torch.Generator
    prompt_len: int
    budget_end: int  # the sequence may not grow past this position
    forced: list[PlanRound] = field(default_factory=list)  # the user's plan rounds still to use
    pieces: list[str] = field(default_factory=list)  # clean-text pieces in answer order
    plan: list[tuple[PlanItem, ...]] = field(default_factory=list)
    confidences: list[float] = field(default_factory=list)
    counts: dict = field(default_factory=lambda: dict(
        forwards=0, plan_tokens=0, denoise_steps=0, prefill_forwards=0, rounds=0, spans=0))
    seconds: dict = field(default_factory=lambda: dict(plan=0.0, denoise=0.0))
    last_logits: torch.Tensor | None = None  # what the last plan token was sampled from
    phase: str | None = None
    since: float = 0.0

    def clock(self, phase: str | None) -> None:
        """Charge the time since the last switch to the running phase; None pauses."""
        now = time.perf_counter()
        if self.phase is not None:
            self.seconds[self.phase] += now - self.since
        self.phase, self.since = phase, now

    @property
    def room(self) -> int:
        return self.budget_end - self.layout.length

    def finished(self) -> Finished:
        """The last event: the clean answer, the ids, the plan and what the run cost."""
        c, s, lay = self.counts, self.seconds, self.layout
        forwards = c["forwards"]
        generated = lay.length - self.prompt_len
        conf = [x for x in self.confidences if x == x]
        stats = Stats(
            mode=self.config.mode, prompt_tokens=self.prompt_len,
            plan_seconds=s["plan"], denoise_seconds=s["denoise"],
            total_seconds=s["plan"] + s["denoise"], forward_passes=forwards,
            prefill_forwards=c["prefill_forwards"], plan_tokens=c["plan_tokens"],
            denoise_steps=c["denoise_steps"], rounds=c["rounds"], spans=c["spans"],
            generated_tokens=generated,
            critical_path=c["plan_tokens"] + c["denoise_steps"] + c["prefill_forwards"],
            tokens_per_forward=generated / max(1, forwards),
            mean_confidence=sum(conf) / len(conf) if conf else None,
        )
        return Finished(join_spans(self.pieces), tuple(lay.tokens(0, self.prompt_len)),
                        tuple(lay.tokens(self.prompt_len)), tuple(self.plan), stats)


@dataclass(frozen=True)
class Round:
    """One round's scaffold: its items, where its blocks sit, and the masked slots to fill."""

    index: int
    items: tuple[PlanItem, ...]
    terminator: str  # "sync" | "end" | "runaway": how the round's plan ended
    ranges: list[tuple[int, int]]  # each block's [start, end) positions, tags included
    slots: torch.Tensor  # (S, L) the masked slots' positions, -1 past a span's end
    steps: int  # the scheduled number of denoise steps
    start: int  # positions before this are cached; a denoise step recomputes from here on
