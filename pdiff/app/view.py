"""Fold a run's event stream into what the app shows: plan chips, span cards, answer, stats.

`fold(events)` (or `RunView.apply` one event at a time while streaming) gives a `RunView`; the
`*_html` functions render it as escaped HTML styled by the `pd-*` classes of assets/style.css.
`fold(events[:k])` is the replay frame after k events; `last_round_layout` is the shape of the
last round, for the attention picture.

This module knows nothing of gradio, torch or models: it reads plain `pdiff.events` data only
(and reads plan items as `pdiff.plan` does).
Charts and the attention picture live in `pdiff.app.chart`, traces in `pdiff.app.trace`, and a
committed slot's inspector tooltip (step, confidence, top candidates) in `pdiff.app.inspector`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from html import escape

from pdiff.app.inspector import check_candidates, inspect_attrs, tip_html
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
from pdiff.tags import CONTROL_TAGS, IM_END, PAD, PROMISE, SYNC, TOPIC_END

MASK_GLYPH = "▒"  # how a masked slot is drawn; never the literal mask tag


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


# --- HTML ----------------------------------------------------------------------------------------


def _f(x: float | None, digits: int = 2) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def plan_html(view: RunView) -> str:
    """Plan lane: per round, chips for finished items, the partial item, and the raw tokens."""
    parts = []
    for rnd in view.ordered_rounds():
        if not rnd.plan:
            continue
        chips, partial = plan_chips(rnd)
        row = []
        for c in chips:
            size = f"{c.length} tok" if c.length is not None else (
                f"{c.units}" if c.units is not None else "?")
            tip = f"{c.topic} · {c.units if c.units is not None else '?'} units" + (
                f" = {c.length} tokens" if c.length is not None else "")
            cls = "pd-chip" + (" pd-forced" if c.forced else "") + (
                " pd-bad" if c.units is None else "")
            row.append(f'<span class="{cls}" title="{escape(tip)}">{escape(c.topic)}'
                       f'<b class="pd-len">{escape(size)}</b></span>')
        if partial is not None:
            row.append(f'<span class="pd-chip pd-partial">{escape(partial)}…</span>')
        if rnd.terminator:
            term = SYNC if rnd.terminator == "sync" else "end"
            row.append(f'<span class="pd-term">{escape(term)}</span>')
        raw = "".join(
            f'<span class="pd-ptok{" pd-forced" if t.forced else ""}'
            f'{" pd-tag" if t.text in CONTROL_TAGS.values() else ""}">{escape(t.text)}</span>'
            for t in rnd.plan)
        parts.append(f'<div class="pd-plan-round"><div class="pd-round-label">plan · round '
                     f'{rnd.round + 1}</div><div class="pd-chips">{"".join(row)}</div>'
                     f'<div class="pd-plan-raw">{raw}</div></div>')
    return f'<div class="pd pd-plan">{"".join(parts)}</div>' if parts else ""


def _slot_html(view: RunView, rnd: RoundView, span: SpanView, i: int) -> str:
    state = view.slot_state(rnd, span, i)
    if state == "masked":
        return f'<span class="pd-tok pd-masked" title="masked">{MASK_GLYPH}</span>'
    p = span.confidence[i]
    tip = f"p={_f(p)} · step {span.step_of[i] + 1}" if span.step_of[i] is not None else f"p={_f(p)}"
    text = span.tokens[i]
    extra = " pd-pad" if text == PAD else ""
    level = _f(min(max(p, 0.0), 1.0)) if p is not None and math.isfinite(p) else "0"
    top = span.top[i] if span.top else None
    if top is not None and span.step_of[i] is not None:  # the inspector: a tooltip, no title
        return (f'<span class="pd-tok pd-{state}{extra} pd-inspect" style="--p:{level}"'
                f'{inspect_attrs(span.step_of[i], p)}>{escape(text)}'
                f'{tip_html(text, span.step_of[i], p, top)}</span>')
    return (f'<span class="pd-tok pd-{state}{extra}" style="--p:{level}" '
            f'title="{escape(tip)}">{escape(text)}</span>')


# What a span card's confidence is: the model's own certainty, which reads 1.00 under gibberish too.
CONFIDENCE_TIP = ("The mean confidence the model had in this span's tokens when it committed them, "
                  "under the run's temperature and top-p. It says how sure the model was, not "
                  "whether the text is right: broken words can score 1.00.")


def span_card_html(view: RunView, rnd: RoundView, s: int) -> str:
    """One card: topic and length, every slot, filled/total and the model's mean confidence,
    labelled as confidence and not a correctness check (`CONFIDENCE_TIP` on hover)."""
    span = rnd.spans[s]
    slots = "".join(_slot_html(view, rnd, span, i) for i in range(span.length))
    share = span.filled / span.length if span.length else 1.0
    return (f'<div class="pd-span"><div class="pd-span-head"><span class="pd-span-topic">'
            f'{escape(span.topic)}</span><span class="pd-span-len">{span.length} tok</span></div>'
            f'<div class="pd-span-body">{slots}</div><div class="pd-span-foot">'
            f'<span class="pd-fill">{span.filled}/{span.length}</span>'
            f'<span class="pd-meter"><span style="width:{share * 100:.0f}%"></span></span>'
            f'<span class="pd-conf" title="{escape(CONFIDENCE_TIP)}">model confidence '
            f'{_f(span.mean_confidence)} (not a correctness check)</span></div></div>')


def step_label(rnd: RoundView) -> str:
    """The round's step count. The schedule's steps (`SpansOpened.steps`, the step ratio times the
    longest span) are exact for the reference rule, a cap for the adaptive threshold, which ends
    a round as soon as every slot is committed, and a floor for the paper's, which may add steps:
    once the round ended, the label says which happened, so a ratio that did not act says so."""
    if rnd.step < 0:
        return "masked"
    used, planned = rnd.step + 1, rnd.steps
    if rnd.texts is None or used == planned:
        return f"step {used}/{planned}"
    if used < planned:
        return (f"{used} steps: the threshold committed every slot before the step ratio's cap of "
                f"{planned}, so the ratio did not act")
    return f"{used} steps: {planned} scheduled, the threshold added {used - planned}"


def spans_html(view: RunView) -> str:
    """Span lanes, round after round, then the autoregressive lane if any text was written AR."""
    parts = []
    for rnd in view.ordered_rounds():
        if not rnd.opened:
            continue
        step = escape(step_label(rnd))
        cards = "".join(span_card_html(view, rnd, s) for s in range(len(rnd.spans)))
        parts.append(f'<section class="pd-round"><div class="pd-round-label">'
                     f'round {rnd.round + 1} · {_plural(len(rnd.spans), "span")} · {step}</div>'
                     f'<div class="pd-spans">{cards}</div></section>')
    if view.text_tokens:
        toks = "".join(f'<span class="pd-tok pd-ar">{escape(t)}</span>' for t in view.text_tokens)
        parts.append(f'<section class="pd-round pd-ar-lane"><div class="pd-round-label">'
                     f'autoregressive · {_plural(len(view.text_tokens), "token")}</div>'
                     f'<div class="pd-span-body">{toks}</div></section>')
    return f'<div class="pd pd-lanes">{"".join(parts)}</div>' if parts else ""


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


def stats_html(view: RunView, ar_seconds: float | None = None,
               quality: tuple[str, str] | None = None) -> str:
    """Stats panel of a finished run (with its quality row, if given); a placeholder before."""
    if view.finished is None:
        return '<div class="pd pd-stats pd-empty">stats appear when the run finishes</div>'
    s = view.finished.stats
    first = [quality] if quality is not None else []
    if s.mode == "autoregressive":  # no plan, no spans: every token is its own forward
        rows = [("mode", s.mode), ("decode time", f"{_f(s.plan_seconds)} s"),
                ("total", f"{_f(s.total_seconds)} s"), ("forward passes", str(s.forward_passes)),
                ("tokens / forward", _f(s.tokens_per_forward)), ("critical path", str(s.critical_path)),
                ("generated tokens", str(s.generated_tokens)), ("mean confidence", _f(s.mean_confidence))]
        return _stats_list(first + rows)
    rows = [("mode", s.mode), ("plan time", f"{_f(s.plan_seconds)} s"),
            ("denoise time", f"{_f(s.denoise_seconds)} s"), ("total", f"{_f(s.total_seconds)} s"),
            ("forward passes", str(s.forward_passes)),
            ("tokens / forward", _f(s.tokens_per_forward)), ("critical path", str(s.critical_path)),
            ("rounds · spans", f"{s.rounds} · {s.spans}"), ("denoise steps", str(s.denoise_steps)),
            ("plan tokens", str(s.plan_tokens)), ("generated tokens", str(s.generated_tokens)),
            ("mean confidence", _f(s.mean_confidence))]
    ratio = speedup(s, ar_seconds)
    if ratio is not None:
        rows.append(("speedup vs AR (whole run)", f"{ratio:.2f}×"))  # per word: the why line
    return _stats_list(first + rows)


def _stats_list(rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<div><dt>{escape(k)}</dt><dd>{escape(v)}</dd></div>" for k, v in rows)
    return f'<dl class="pd pd-stats">{body}</dl>'


def notices_html(view: RunView) -> str:
    """The run's notices as a list of warnings; empty when there are none."""
    return notices_list_html(view.notices)


def notices_list_html(notices: Iterable[Notice]) -> str:
    """Notices as a list of warnings; empty when there are none."""
    notices = list(notices)
    if not notices:
        return ""
    items = "".join(f'<li class="pd-notice"><b>{escape(notice_label(n.kind))}</b> {escape(n.message)}</li>'
                    for n in notices)
    return f'<ul class="pd pd-notices">{items}</ul>'


# What each notice kind is called on the page (the kinds are the engine's plain-data codes).
NOTICE_LABELS = {"budget": "length budget", "context": "context full",
                 "malformed_item": "plan item not understood", "max_rounds": "round limit",
                 "no_plan": "no usable plan", "runaway_plan": "plan did not end"}


def notice_label(kind: str) -> str:
    """A notice kind in words: "malformed_item" -> "plan item not understood"."""
    return NOTICE_LABELS.get(kind, kind.replace("_", " "))


def legend_html() -> str:
    """Key to the slot states, plan tokens and confidence shading."""
    return ('<div class="pd pd-legend">'
            f'<span class="pd-tok pd-masked">{MASK_GLYPH}</span> masked '
            '<span class="pd-tok pd-new" style="--p:1">new</span> committed this step '
            '<span class="pd-tok pd-old" style="--p:1">old</span> committed earlier '
            '<span class="pd-tok pd-old" style="--p:0.3">low p</span> shade = confidence '
            f'<span class="pd-tok pd-old pd-pad" style="--p:1">{escape(PAD)}</span> unused slot '
            '(dropped from the answer) '
            '<span class="pd-chip">topic<b class="pd-len">N</b></span> plan item '
            '<span class="pd-chip pd-forced">topic<b class="pd-len">N</b></span> your plan'
            '</div>')


def stats_rows_html(rows: Iterable[tuple[str, str]]) -> str:
    """A stats panel of (name, value) rows, e.g. a stopped run's partial stats."""
    return _stats_list(list(rows))
