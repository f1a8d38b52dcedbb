"""Why a run was as fast as it was, in one line computed from the run, and "How it works" for the
machine at hand.

`why_line(view, ar_view, device)` reads the run's stats and folded events: its forwards (plan,
denoise), how many tokens a denoise forward covered, and, from the run's own timings, what a
denoise forward cost against a plan forward. With the AR baseline of the same prompt it adds the
AR forwards and the measured wall clock, whole run first and then per answer word; without it,
it says what the span tokens would have cost one forward each. `speed_note(cost)` is the
start-up measurement (`pdiff.app.machine.ForwardCost`) in words, for "How it works". Nothing here
is a constant of any machine. This module knows nothing of gradio, torch or models.
"""

from __future__ import annotations

import math
from html import escape

from pdiff.app.fold import RunView
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


# The whole-run and per-word ratios agree when they point the same way and lie within this factor
# of each other. Their quotient is the answers' length ratio (words / AR words), so this is also
# how unequal two answers may be before their per-word comparison stops reading as the run's speed.
AGREE = 1.5


def count_words(text: str) -> int:
    """Words as written: whitespace-separated pieces with a letter or digit in them. A broken
    word ("ci ty") counts as written; stray punctuation ("—", "...") counts as none."""
    return sum(any(c.isalnum() for c in piece) for piece in text.split())


def wall_clock(s, ar, words: int, ar_words: int, repeats=((), ())) -> str:
    """The wall clock against AR: the whole run first, since it is the run's speed, then per
    answer word, since two answers of unequal length (12 words against 84) are not two timings of
    one task. The per-word ratio is the whole-run one times words / ar_words, so an answer of
    many broken words reads fast per word: when the two disagree (one faster and the other
    slower, or more than AGREE apart) the line says the per-word figure is not the run's speed.
    `repeats` are the seconds of earlier runs with the same settings (the same forwards) and of
    the AR runs of the same prompt: with two or more, their range is shown and their medians
    compared, since one timing on a shared CPU varies from run to run; with one, the line says
    it is one timing."""
    pd_times = [t for t in repeats[0] if t > 0] or [s.total_seconds]
    ar_times = [t for t in repeats[1] if t > 0] or [ar.total_seconds]
    median = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    whole = median(ar_times) / median(pd_times)
    line = f"whole run {_ratio_words(whole)} than AR ({_spread(pd_times)} vs AR {_spread(ar_times)})"
    if words and ar_words:
        per_word = whole * words / ar_words
        line += f"; so per answer word it is {_ratio_words(per_word)} ({words} words vs AR {ar_words})"
        if (per_word >= 1) != (whole >= 1) or not 1 / AGREE <= per_word / whole <= AGREE:
            line += ("; the per-word figure counts the answer's words, broken or not, and is not "
                     "the run's speed")
    if len(pd_times) < 2 or len(ar_times) < 2:
        line += "; one timing each, which varies from run to run: run it again to see the spread"
    return line


def why_line(view: RunView, ar_view: RunView | None, device: str, dense: bool = False,
             cached: bool = True, repeats: tuple = ((), ())) -> str:
    """One line: the run's forwards (vs AR's), the per-forward cost factor it measured, and the
    wall clock it led to, whole run first, then per answer word (`wall_clock`). Empty before the
    run finished; plain text."""
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
    if ar is not None:
        words, ar_words = count_words(view.finished.text), count_words(ar_view.finished.text)
        if s.total_seconds > 0 and ar.total_seconds > 0:
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


# The why line covers the whole run; a replay's step does not move it, and the page says so.
WHY_SCOPE = "whole run, not the replay step"


def why_html(line: str) -> str:
    """The why line on the page, ending with its scope (`WHY_SCOPE`): it starts, as the line
    does, with the run's forwards."""
    if not line:
        return ""
    return (f'<div class="pd pd-why">{escape(line)}<span class="pd-why-scope"> · '
            f'{escape(WHY_SCOPE)}</span></div>')


# Why the page's speed line and the benchmark (README, Results) can disagree.
BENCH_NOTE = (" The speed line under the spans times one prompt on this page, whole run and "
              "per answer word, beside whatever else the machine is running; the benchmark in "
              "the README's Results takes medians over 200 prompts with one thread per run. A "
              "single run can land on either side of those medians; they are the figures to "
              "quote.")


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


def capture_note(graphs) -> str:
    """'How it works' on a GPU whose forwards run as CUDA graphs (a `pdiff.graphs.Graphs`, or
    None): which widths were captured at start-up and how long that took; "" with none."""
    if graphs is None or not graphs.capture_seconds:
        return ""
    widths = sorted(graphs.capture_seconds)
    return (f" The forwards run as CUDA graphs, replayed whole instead of op by op: "
            f"{len(widths)} widths ({widths[0]} to {widths[-1]} tokens) were captured at start-up "
            f"in {graphs.capture_total:.1f} s; a wider forward runs op by op.")
