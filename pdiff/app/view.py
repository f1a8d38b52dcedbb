"""The HTML of a folded run: plan chips, span cards, stats, notices and the legend.

The `*_html` functions render a `pdiff.app.fold.RunView` as escaped HTML styled by the `pd-*`
classes of assets/style.css; `step_label` and `notice_label` are a round's steps and a notice's
kind in words. What a run's state is (the fold, its answer) lives in `pdiff.app.fold`.

This module knows nothing of gradio, torch or models, nor how events fold: it reads a folded
run only.
Charts and the attention picture live in `pdiff.app.chart`, traces in `pdiff.app.trace`, and a
committed slot's inspector tooltip (step, confidence, top candidates) in `pdiff.app.inspector`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from html import escape

from pdiff.app.fold import RoundView, RunView, SpanView, plan_chips, speedup
from pdiff.app.inspector import inspect_attrs, tip_html
from pdiff.events import Notice
from pdiff.tags import CONTROL_TAGS, PAD, SYNC

MASK_GLYPH = "▒"  # how a masked slot is drawn; never the literal mask tag


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
    """A stats panel of (name, value) rows."""
    return _stats_list(list(rows))


def partial_stats_html(partial: dict) -> str:
    """A stopped run's partial stats (`RunRecord.progress`) as a stats panel."""
    return stats_rows_html((k.replace("_", " "), str(v)) for k, v in partial.items())
