"""Why a run was as fast as it was, in one line computed from the run, and "How it works" for the
machine at hand.

`why_line(view, ar_view, device)` reads the run's stats and folded events: its forwards (plan,
denoise), how many tokens a denoise forward covered, and, from the run's own timings, what a
denoise forward cost against a plan forward. With the AR baseline of the same prompt it adds the
AR forwards and the measured wall-clock ratio; without it, it says what the span tokens would
have cost one forward each. `speed_note(cost)` is the start-up measurement
(`pdiff.app.machine.ForwardCost`) in words, for "How it works". Nothing here is a constant of
any machine. This module knows nothing of gradio, torch or models.
"""

from __future__ import annotations

import math
from html import escape

from pdiff.app.view import RunView
from pdiff.tags import IM_END, SYNC


def denoise_widths(view: RunView, dense: bool = False, cached: bool = True) -> list[int]:
    """Tokens each denoise forward recomputed, in order.

    With a cache a step recomputes the blocks (span and its two tags) that still had masks
    before it (sparse) or every block of the round (dense); without a cache, the whole
    sequence up to the round's end.
    """
    widths, context = [], view.prompt_tokens
    for rnd in view.ordered_rounds():
        plan = sum(t.text not in (SYNC, IM_END) for t in rnd.plan)  # as the sequence holds them
        blocks = [s.length + 2 for s in rnd.spans]
        for step in range(rnd.step + 1 if rnd.opened else 0):
            if not cached:
                widths.append(context + plan + sum(blocks))
            elif dense:
                widths.append(sum(blocks))
            else:  # a block still had a mask before this step iff some slot was committed at or after it
                widths.append(sum(b for b, s in zip(blocks, rnd.spans, strict=True)
                                  if any(x is not None and x >= step for x in s.step_of)))
        context += plan + sum(blocks)
    return widths


def fmt_times(x: float) -> str:
    return f"{x:.1f}×" if x < 10 else f"{x:.0f}×"


def _ratio_words(ratio: float) -> str:
    if ratio >= 1:
        return f"{fmt_times(ratio)} faster"
    return f"{fmt_times(1 / ratio)} slower"


def _spread(times: list[float]) -> str:
    """"0.27 s" for one timing, "0.27 to 0.35 s over 3 runs" for several."""
    if len(times) < 2:
        return f"{times[-1]:.2f} s"
    return f"{min(times):.2f} to {max(times):.2f} s over {len(times)} runs"


def wall_clock(s, ar, words: int, ar_words: int, repeats=((), ())) -> str:
    """The wall clock against AR, per answer word: two answers of unequal length (12 words
    against 84) are not two timings of one task, so the whole-run ratio is not the speedup.
    `repeats` are the seconds of earlier runs with the same settings (the same forwards) and of
    the AR runs of the same prompt: with two or more, their range is shown, since one timing on
    a shared CPU varies from run to run; with one, the line says it is one timing."""
    pd_times = [t for t in repeats[0] if t > 0] or [s.total_seconds]
    ar_times = [t for t in repeats[1] if t > 0] or [ar.total_seconds]
    median = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    ratio = (median(ar_times) / ar_words) / (median(pd_times) / words)
    line = (f"so per answer word it is {_ratio_words(ratio)} ({_spread(pd_times)} for {words} words "
            f"vs AR {_spread(ar_times)} for {ar_words})")
    if not 2 / 3 <= words / ar_words <= 3 / 2:
        line += (f"; the answers differ in length, so the whole-run ratio "
                 f"({fmt_times(ar.total_seconds / s.total_seconds)}) would mislead")
    if len(pd_times) < 2 or len(ar_times) < 2:
        line += "; one timing each, which varies from run to run: run it again to see the spread"
    return line


def why_line(view: RunView, ar_view: RunView | None, device: str, dense: bool = False,
             cached: bool = True, repeats: tuple = ((), ())) -> str:
    """One line: the run's forwards (vs AR's), the per-forward cost factor it measured, and the
    wall clock it led to, per answer word (`wall_clock`). Empty before the run finished; plain
    text."""
    if view.finished is None or view.mode == "autoregressive":
        return ""
    s = view.finished.stats
    plan_fw = s.forward_passes - s.denoise_steps
    ar = ar_view.finished.stats if ar_view is not None and ar_view.finished is not None else None
    head = f"{s.mode}: {s.forward_passes} forwards (plan {plan_fw}, denoise {s.denoise_steps})"
    if ar is not None:
        head += f" vs AR {ar.forward_passes}"
    widths = denoise_widths(view, dense, cached)
    parts = [head]
    factor = None
    if widths and plan_fw and s.plan_seconds > 0 and s.denoise_seconds > 0:
        factor = (s.denoise_seconds / s.denoise_steps) / (s.plan_seconds / plan_fw)
        mean = sum(widths) / len(widths)
        parts.append(f"on this {device} a denoise forward over {mean:.0f} tokens took "
                     f"{fmt_times(factor)} a plan forward")
    words = len(view.finished.text.split())
    ar_words = len(ar_view.finished.text.split()) if ar is not None else 0
    if ar is not None:
        if s.total_seconds > 0 and ar.total_seconds > 0 and words and ar_words:
            parts.append(wall_clock(s, ar, words, ar_words, repeats))
        return "; ".join(parts)
    span_tokens = sum(x is not None for rnd in view.ordered_rounds() for sp in rnd.spans
                      for x in sp.step_of)
    if factor is not None and span_tokens and math.isfinite(factor):
        cost = s.denoise_steps * factor
        verdict = "less" if cost < span_tokens else "more"
        parts.append(f"so its {span_tokens} span tokens cost about {cost:.0f} plan forwards' time, "
                     f"{verdict} than {span_tokens} one at a time; tick Compare with AR to measure "
                     "the wall clock")
    return "; ".join(parts)


def why_html(line: str) -> str:
    return f'<div class="pd pd-why">{escape(line)}</div>' if line else ""


# Why the page's speed line and the benchmark (README, Results) can disagree.
BENCH_NOTE = (" The speed line under the spans times one prompt on this page, per answer word, "
              "beside whatever else the machine is running; the benchmark in the README's Results "
              "takes medians over 200 prompts with one thread per run. A single run can land on "
              "either side of those medians; they are the figures to quote.")


def speed_note(cost) -> str:
    """'How it works' for this machine, from the start-up measurement (a ForwardCost) or None."""
    if cost is None:
        return ("Whether the shared forwards make it faster depends on the machine: a forward "
                "over many tokens costs more than a 1-token forward, by a factor each device "
                "has to measure." + BENCH_NOTE)
    factor = cost.factor
    measured = (f"Measured on this {cost.device} at start-up: a forward over {cost.wide_tokens} "
                f"tokens takes {cost.wide_seconds * 1000:.1f} ms, {fmt_times(factor)} a 1-token "
                f"forward ({cost.narrow_seconds * 1000:.1f} ms).")
    if factor <= 2:
        verdict = (f" Here parallel tokens are nearly free: a forward over {cost.wide_tokens} "
                   "tokens costs about one AR step, so every shared forward saves the time of the "
                   "AR steps it replaces.")
    else:
        verdict = (" Here parallel tokens are not free: a denoise forward saves time only when it "
                   f"commits more than about {factor:.0f} tokens across the spans (at "
                   f"{cost.wide_tokens} tokens wide), so a low step ratio pays and a high one can "
                   "make the run slower than AR.")
    return measured + verdict + BENCH_NOTE
