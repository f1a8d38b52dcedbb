"""The state of one generation: its sequence, cache, clock and counters, and one round's scaffold.

`Run` is what the engine's loops share while a run streams; when it ends, `Run.finished()` adds
the counters up to the Finished event and its Stats (critical path, tokens per forward, mean
confidence). `Round` is what 2) scaffold hands to 3) denoise: where a round's blocks sit and
which slots are masked. `Fill` is a round's denoising state, step to step: a step's `Proposal`
commits into it, and its `StepRead` is the step's one read of the device. All are
engine-internal and never leave it: events carry plain data.
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


@dataclass(frozen=True)
class Proposal:
    """One denoise step's proposal at every slot (S, L); zero (scores: -inf) where not masked."""

    tokens: torch.Tensor  # (S, L) the sampled token ids
    scores: torch.Tensor  # (S, L) the unmasking score the schedule ranks slots by
    conf: torch.Tensor  # (S, L) the sampled token's probability
    top_ids: torch.Tensor  # (K, S, L) the model's most likely tokens, most likely first
    top_probs: torch.Tensor  # (K, S, L) their probabilities

    @classmethod
    def place(cls, where: tuple[torch.Tensor, torch.Tensor], shape: torch.Size, tokens: torch.Tensor,
              scores: torch.Tensor, conf: torch.Tensor, top_ids: torch.Tensor,
              top_probs: torch.Tensor) -> Proposal:
        """The N masked slots' values ((N,), candidates (N, K)) placed at their slots `where`."""
        dev, k = tokens.device, top_ids.shape[1]
        out = cls(torch.zeros(shape, dtype=torch.long, device=dev),
                  torch.full(shape, float("-inf"), device=dev),  # never ranked
                  torch.zeros(shape, device=dev), torch.zeros((k, *shape), dtype=torch.long, device=dev),
                  torch.zeros((k, *shape), device=dev))
        out.tokens[where], out.scores[where], out.conf[where] = tokens, scores, conf
        out.top_ids[(slice(None), *where)] = top_ids.T
        out.top_probs[(slice(None), *where)] = top_probs.T
        return out


@dataclass(frozen=True)
class StepRead:
    """What one denoise step read from the device: nested (S, L) lists of plain values."""

    ids: list  # (S, L) int: every slot's id after the step
    committed: list  # (S, L) bool: committed at this step
    confidence: list  # (S, L) float: the confidence each slot was committed at; nan: masked
    top_ids: list  # (K, S, L) int: this step's candidates
    top_probs: list  # (K, S, L) float: their probabilities


@dataclass
class Fill:
    """One round's denoising state on the device, and what the host knows of it."""

    slots: torch.Tensor  # (S, L) the masked slots' positions, -1 past a span's end
    at: torch.Tensor  # (S, L) where each slot reads and writes; padding: position 0
    masked: torch.Tensor  # (S, L) bool: still masked
    carry: torch.Tensor  # (S,) what the schedule carries from step to step
    conf_at: torch.Tensor  # (S, L) the confidence each slot was committed at; nan: masked
    blocks: list[torch.Tensor]  # each block's positions
    row_of: torch.Tensor  # (T,) each position's row in the last forward's logits
    lengths: tuple[int, ...]  # each span's length
    left: list[int]  # masked slots per span, as the last read told the host

    @classmethod
    def of(cls, rd: Round, length: int) -> Fill:
        """The state before a round's first step: every slot masked; `length` is the sequence's."""
        slots, dev = rd.slots, rd.slots.device
        lengths = tuple(it.length for it in rd.items)
        return cls(slots, slots.clamp_min(0), slots >= 0,
                   torch.zeros(slots.shape[0], dtype=torch.long, device=dev),
                   torch.full(slots.shape, float("nan"), device=dev),
                   [torch.arange(a, b, device=dev) for a, b in rd.ranges],
                   torch.full((length,), -1, dtype=torch.long, device=dev), lengths, list(lengths))

    def masked_slots(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The masked slots (N,) x 2 in row-major order, as nonzero() lists them; the host knows
        how many there are, so the device is not asked."""
        flat = torch.argsort((~self.masked).flatten().int(), stable=True)[: sum(self.left)]  # (N,)
        return flat // self.slots.shape[1], flat % self.slots.shape[1]

    def commit(self, layout: Layout, proposal: Proposal, commit: torch.Tensor) -> None:
        """Write the committed (S, L) proposals into the sequence; they are masked no more."""
        layout.ids[self.at] = torch.where(commit, proposal.tokens, layout.ids[self.at])
        self.conf_at = torch.where(commit, proposal.conf, self.conf_at)
        self.masked &= ~commit

    def read(self, layout: Layout, commit: torch.Tensor, proposal: Proposal) -> StepRead:
        """The step's one read of the device: every slot's id, commit flag and confidence, and
        the step's candidates. One copy carries all of them as float64, which holds every id
        exactly (ids < 2**53); the ids are integers again on arrival. It also updates `left`."""
        k = proposal.top_ids.shape[0]
        slots = torch.stack([layout.ids[self.at].double(), commit.double(), self.conf_at.double()])
        packed = torch.cat([slots, proposal.top_ids.double(),
                            proposal.top_probs.double()]).tolist()  # (3 + 2K, S, L)
        ids, committed, confidence = packed[:3]
        whole = lambda rows: [[int(t) for t in row] for row in rows]  # noqa: E731
        read = StepRead(whole(ids), [[c == 1.0 for c in row] for row in committed], confidence,
                        [whole(plane) for plane in packed[3:3 + k]], packed[3 + k:])
        self.left = [n - sum(row) for n, row in zip(self.left, read.committed)]
        return read
