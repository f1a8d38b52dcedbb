"""Fold a run's event stream into its state: rounds, plan items, span slots, the answer.

`fold(events)` (or `RunView.apply` one event at a time while streaming) gives a `RunView`;
`fold(events[:k])` is the replay frame after k events. `plan_chips` reads a round's plan items,
`last_round_layout` is the shape of the last round, for the attention picture, and
`stopped_answer` is what a stopped run had written.

This module knows nothing of gradio, torch, models or HTML: it reads plain `pdiff.events` data
only (reads plan items as `pdiff.plan` does, and checks candidates as `pdiff.app.inspector`
does). The page's HTML of a folded run lives in `pdiff.app.view`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from pdiff.app.inspector import check_candidates
from pdiff.events import (
    Candidate,
    DenoiseStep,
    Event,
    Finished,
    Notice,
    PlanToken,
    RoundEnd,
    SpansOpened,
    Started,
    Stats,
    TextToken,
)
from pdiff.plan import item_parts
from pdiff.tags import IM_END, PAD, PROMISE, SYNC, TOPIC_END


@dataclass
class Chip:
    """One finished plan item: units as the plan wrote them (None: no number), or as opened."""

    topic: str
    units: int | None
    length: int | None = None  # tokens, known once the round's spans opened
    forced: bool = False


@dataclass
class SpanView:
    """One span card: its promise and the latest state of every slot."""

    topic: str
    units: int
    length: int
    tokens: tuple[str | None, ...]
    confidence: tuple[float | None, ...]
    step_of: list[int | None]  # step at which each slot was committed, None while masked
    top: list[tuple[Candidate, ...] | None] = field(default_factory=list)  # per slot, once known

    @property
    def filled(self) -> int:
        return sum(t is not None for t in self.tokens)

    @property
    def masked(self) -> int:
        return len(self.tokens) - self.filled

    @property
    def mean_confidence(self) -> float | None:
        pairs = zip(self.tokens, self.confidence, strict=True)
        values = [c for t, c in pairs if t is not None and c is not None]
        return sum(values) / len(values) if values else None


@dataclass
class RoundView:
    """One round: its plan tokens as streamed, then its spans once opened."""

    round: int
    plan: list[PlanToken] = field(default_factory=list)
    spans: list[SpanView] = field(default_factory=list)
    opened: bool = False
    terminator: str | None = None  # "sync" | "end" once the spans opened
    steps: int = 0  # scheduled denoise steps
    step: int = -1  # last denoise step seen, -1 before the first
    texts: tuple[str, ...] | None = None  # clean span texts at RoundEnd


@dataclass
class RunView:
    """The folded state of a run so far. Mutable: `apply` one event at a time."""

    mode: str | None = None
    prompt_tokens: int = 0
    rounds: dict[int, RoundView] = field(default_factory=dict)
    text_tokens: list[str] = field(default_factory=list)  # AR baseline / AR fallback lane
    notices: list[Notice] = field(default_factory=list)
    finished: Finished | None = None
    last_step: tuple[int, int] | None = None  # (round, step) of the latest DenoiseStep
    count: int = 0  # events folded
    vocab_size: int | None = None  # when known, candidate ids are checked against it

    def round(self, index: int) -> RoundView:
        return self.rounds.setdefault(index, RoundView(index))

    def apply(self, ev: Event) -> RunView:
        """Fold one event in; raises ValueError on an event that contradicts the ones before."""
        if isinstance(ev, Started):
            self.mode, self.prompt_tokens = ev.mode, ev.prompt_tokens
        elif isinstance(ev, PlanToken):
            self.round(ev.round).plan.append(ev)
        elif isinstance(ev, TextToken):
            self.text_tokens.append(ev.text)
        elif isinstance(ev, Notice):
            self.notices.append(ev)
        elif isinstance(ev, SpansOpened):
            rnd = self.round(ev.round)
            if rnd.opened:
                raise ValueError(f"the spans of round {ev.round + 1} opened twice")
            rnd.opened, rnd.terminator, rnd.steps = True, ev.terminator, ev.steps
            rnd.spans = [SpanView(i.topic, i.units, i.length, (None,) * i.length,
                                  (None,) * i.length, [None] * i.length, [None] * i.length)
                          for i in ev.items]
        elif isinstance(ev, DenoiseStep):
            self._step(ev)
        elif isinstance(ev, RoundEnd):
            self.round(ev.round).texts = ev.span_texts
            if self.last_step and self.last_step[0] == ev.round:
                self.last_step = None  # a finished round shows no "new" slots
        elif isinstance(ev, Finished):
            self.finished = ev
        else:
            raise TypeError(f"not an event: {type(ev).__name__}")
        self.count += 1
        return self

    def _step(self, ev: DenoiseStep) -> None:
        rnd = self.rounds.get(ev.round)
        if rnd is None or not rnd.opened:
            raise ValueError(f"a denoise step of round {ev.round + 1} came before its spans")
        shapes = (ev.tokens, ev.confidence)
        if any(len(x) != len(rnd.spans) for x in (*shapes, ev.committed)) or any(
            len(x[s]) != span.length for x in shapes for s, span in enumerate(rnd.spans)
        ):
            raise ValueError(f"a denoise step of round {ev.round + 1} does not fit its spans")
        check_candidates(ev, self.vocab_size)
        for s, span in enumerate(rnd.spans):
            for j, slot in enumerate(ev.committed[s]):
                if not 0 <= slot < span.length:
                    raise ValueError(f"slot {slot} is outside span {s + 1} of round {ev.round + 1}")
                span.step_of[slot] = ev.step
                if ev.top:
                    span.top[slot] = ev.top[s][j]
            span.tokens, span.confidence = ev.tokens[s], ev.confidence[s]
        rnd.step = ev.step
        self.last_step = (ev.round, ev.step)

    def slot_state(self, rnd: RoundView, span: SpanView, slot: int) -> str:
        """'masked', 'new' (committed by the latest denoise step) or 'old'."""
        if span.tokens[slot] is None:
            return "masked"
        fresh = self.last_step == (rnd.round, rnd.step) and span.step_of[slot] == rnd.step
        return "new" if fresh else "old"

    def ordered_rounds(self) -> list[RoundView]:
        return [self.rounds[k] for k in sorted(self.rounds)]


def fold(events: Iterable[Event]) -> RunView:
    """The state after all of `events`; `fold(events[:k])` is replay frame k."""
    view = RunView()
    for ev in events:
        view.apply(ev)
    return view


def plan_chips(rnd: RoundView) -> tuple[list[Chip], str | None]:
    """Finished items of a round (the opened items once known) and the item being written."""
    chips: list[Chip] = []
    body: list[str] | None = None
    forced = False
    for tok in rnd.plan:
        if tok.text == PROMISE:
            body, forced = [], tok.forced
        elif tok.text == TOPIC_END and body is not None:
            parts = item_parts("".join(body))
            topic, units = (parts[0], int(parts[1])) if parts else ("".join(body).strip(), None)
            chips.append(Chip(topic, units, None, forced))
            body = None
        elif body is not None and tok.text not in (SYNC, IM_END):
            body.append(tok.text)
    if rnd.opened:
        forced = bool(rnd.plan) and all(t.forced for t in rnd.plan)
        chips = [Chip(s.topic, s.units, s.length, forced) for s in rnd.spans]
    return chips, ("".join(body) if body is not None else None)


def last_round_layout(view: RunView) -> tuple[int, int, list[int]] | None:
    """(context before the last round's plan, that plan's length, its block lengths) or None.

    Blocks include their <async> tags. Earlier rounds count as context (drawn causal).
    """
    opened = [r for r in view.ordered_rounds() if r.opened]
    if not opened:
        return None
    tags = 0 if view.mode == "diffusion" else 2
    context = view.prompt_tokens
    for rnd in view.ordered_rounds():
        plan = sum(t.text not in (SYNC, IM_END) for t in rnd.plan)
        blocks = [s.length + tags for s in rnd.spans]
        if rnd is opened[-1]:
            return context, plan, blocks
        context += plan + sum(blocks) + (rnd.terminator == "sync")
    return None


def answer_text(view: RunView) -> str:
    """The clean answer once the run finished; empty before."""
    return view.finished.text if view.finished else ""


STOPPED = "[stopped]"  # how the answer box marks a stopped run's text


def stopped_answer(view: RunView) -> str:
    """What a stopped run had written, marked STOPPED: its spans' committed tokens in order, each
    stretch of masked slots as "…" ([PAD] left out), or the AR tokens; a finished run's answer."""
    if view.finished is not None:
        return answer_text(view)
    pieces = []
    for rnd in view.ordered_rounds():
        for span in rnd.spans:
            masked = False
            for tok in span.tokens:
                if tok is None:
                    masked = True
                elif tok != PAD:
                    pieces.append((" … " if masked else "") + tok)
                    masked = False
            pieces.append(" …" if masked else "")
            pieces.append(" ")
    return " ".join([STOPPED, *("".join(pieces) + "".join(view.text_tokens)).split()])


def speedup(stats: Stats, ar_seconds: float | None) -> float | None:
    """AR reference time over this run's time, or None when either is missing or zero."""
    if not ar_seconds or not stats.total_seconds or not math.isfinite(ar_seconds):
        return None
    return ar_seconds / stats.total_seconds

