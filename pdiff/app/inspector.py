"""The token inspector: what the page says about one committed span token, and the check of it.

A committed slot that carries its candidates (`DenoiseStep.top`) is drawn with data attributes,
`data-step` (1-based, as the page counts steps) and `data-conf`, and a tooltip (`.pd-tip`: the
step, the confidence, then a text and a probability per candidate) that CSS shows on hover and
on focus: a click focuses the slot (it has a tabindex), so touch screens and keyboards get it
too. No script runs: Gradio's HTML component does not run scripts in a value. Token texts are
untrusted and always HTML-escaped. `check_candidates` is the strict check of a step's candidates, for traces.

This module knows nothing of gradio, torch or models; it reads plain `pdiff.events` data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from pdiff.events import TOP_CANDIDATES, Candidate, DenoiseStep

PROB_SLACK = 1e-3  # candidates are rounded to 4 digits: their sum may pass 1 by this much


def check_candidates(ev: DenoiseStep, vocab_size: int | None = None) -> None:
    """Raise ValueError unless `ev.top` is what a real run writes: nothing (an older trace), or
    per span, per committed slot, at most TOP_CANDIDATES distinct ids (within `vocab_size` when
    given) with probabilities in [0, 1], most likely first, summing to at most 1."""
    if not ev.top:
        return
    where = f"the candidates of step {ev.step + 1} of round {ev.round + 1}"
    if [len(t) for t in ev.top] != [len(c) for c in ev.committed]:
        raise ValueError(f"{where} do not match its committed slots")
    for span in ev.top:
        for candidates in span:
            problem = _candidates_problem(candidates, vocab_size)
            if problem:
                raise ValueError(f"{where}: {problem}")


def _candidates_problem(candidates: Sequence[Candidate], vocab_size: int | None) -> str | None:
    probs = [c.prob for c in candidates]
    ids = [c.token_id for c in candidates]
    if len(candidates) > TOP_CANDIDATES:
        return f"{len(candidates)} candidates for one slot, at most {TOP_CANDIDATES}"
    if not all(math.isfinite(p) and 0.0 <= p <= 1.0 for p in probs):
        return "a probability outside [0, 1]"
    if probs != sorted(probs, reverse=True) or sum(probs) > 1.0 + PROB_SLACK:
        return "probabilities that are not a most-likely-first share of one distribution"
    if len(set(ids)) != len(ids):
        return "the same token twice"
    limit = vocab_size if vocab_size is not None else math.inf
    if not all(0 <= i < limit for i in ids):
        return f"a token id outside the model's vocabulary of {vocab_size} tokens"
    return None


def shown(text: str) -> str:
    """A token's text as the inspector lists it: spaces and line breaks made visible."""
    return text.replace(" ", "␣").replace("\n", "↵").replace("\t", "⇥") or "∅"


def inspect_attrs(step: int, conf: float | None) -> str:
    """The slot's tabindex (a click focuses it) and data attributes; `step` is 0-based."""
    conf_value = "" if conf is None or not math.isfinite(conf) else f"{conf:.4f}"
    return f' tabindex="0" data-step="{step + 1}" data-conf="{conf_value}"'


def tip_head(step: int, conf: float | None, raw: float | None) -> str:
    """The tooltip's first line. The confidence is the one the unmask rule ranked, under the run's
    temperature and top-p, so it can read 1.00 where the candidates below (the model's own
    distribution, temperature 1) give the same token 0.67: the line names both scales, and the
    committed token's raw probability when it is among the candidates."""
    conf_text = "–" if conf is None or not math.isfinite(conf) else f"{conf:.2f}"
    raw_text = "" if raw is None else f"; {raw:.2f} at temperature 1"
    return f"step {step + 1} · confidence {conf_text} under the sampling settings{raw_text}"


def tip_html(text: str, step: int, conf: float | None, candidates: Sequence[Candidate]) -> str:
    """The tooltip of a committed slot: its step and confidence (`tip_head`), then the model's
    candidates at that step, each text and probability at temperature 1 (the committed one
    marked). Terse markup: every committed slot of a live run carries one."""
    raw = next((c.prob for c in candidates if c.text == text), None)
    rows = "".join(
        f'<i{" class=pd-chosen" if c.text == text else ""}>{escape(shown(c.text))}</i>'
        f"<u>{c.prob:.4f}</u>" for c in candidates)
    return (f'<span class="pd-tip" role="tooltip"><b>{escape(tip_head(step, conf, raw))}</b>'
            f"<s>the model's top {len(candidates)} at temperature 1, before the sampling "
            f"settings</s>{rows}</span>")
