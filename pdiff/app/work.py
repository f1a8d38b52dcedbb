"""A bound on the denoise work one request may ask for (issue 15, "a slow extreme").

A round's spans are denoised together for `steps` steps, and each step recomputes the spans'
blocks, so a round costs about steps x (the blocks' tokens): quadratic in the longest span. The
largest length scale with the reference schedule makes one span of the whole budget, which cost
~100x a normal run. `bounded` follows a run's events and refuses it, as each round's spans open
and before any is denoised, once its total passes `work_cap`: WORK_PER_TOKEN x the run's
max_new_tokens, or x the default budget where that is larger.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from pdiff.app.inputs import DEFAULT_MAX_NEW_TOKENS
from pdiff.events import Event, SpansOpened

WORK_PER_TOKEN = 32  # block-token steps per token of max_new_tokens; the reference plans use < 16


class WorkError(ValueError):
    """A run's plan asks for more denoise work than one request may use; the message says what
    to lower."""


def round_work(ev: SpansOpened, paper: bool = False) -> int:
    """An upper bound on a round's denoise work: steps x the tokens of its blocks (each span
    and its two tags). The paper's threshold rule may add steps, up to the longest span's
    length (it commits at least one slot per span a step)."""
    longest = max((it.length for it in ev.items), default=0)
    steps = max(ev.steps, longest) if paper else ev.steps
    return steps * sum(it.length + 2 for it in ev.items)


def work_cap(max_new_tokens: int) -> int:
    """The work one request may use: WORK_PER_TOKEN x its budget, never less than the default
    budget's (a visitor who lowers max_new_tokens makes a run cheaper, and a normal plan at 160
    tokens -- 4 spans, the longest 44 -- needs more than 32 x 160)."""
    return WORK_PER_TOKEN * max(int(max_new_tokens), DEFAULT_MAX_NEW_TOKENS)


def bounded(events: Iterable[Event], max_new_tokens: int, paper: bool = False) -> Iterator[Event]:
    """`events` as they come, until a round's spans would take the run's denoise work past
    work_cap(max_new_tokens): then WorkError, before that round is denoised."""
    cap, total = work_cap(max_new_tokens), 0
    try:
        for ev in events:
            if isinstance(ev, SpansOpened):
                total += round_work(ev, paper)
                if total > cap:
                    raise WorkError(_refusal(ev, total, cap))
            yield ev
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()  # a refused or stopped run releases the engine now


def _refusal(ev: SpansOpened, total: int, cap: int) -> str:
    longest = max(it.length for it in ev.items)
    return (f"this plan needs {total:,} denoise token-steps (round {ev.round + 1}: "
            f"{len(ev.items)} span(s), the longest {longest} tokens, {ev.steps} steps), over the "
            f"{cap:,} one request may use; lower the length "
            "scale or the step ratio")
