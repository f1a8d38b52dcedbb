"""ZeroGPU support: run GPU work under `spaces.GPU` when the `spaces` package is there.

On a ZeroGPU Space a GPU is attached per request for a declared duration. `request_seconds`
computes that duration from the request's own settings (worst-case forward passes), and
`on_gpu` wraps a function with it. Without `spaces` (CPU, a dedicated GPU, tests) `on_gpu`
returns the function unchanged. `friendly_error` turns ZeroGPU's quota and duration failures
into one line a visitor can act on. `duration_from` reads a request's knobs by its endpoint's
input names. No gradio import here; app.py wires it.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect

from pdiff.config import Knobs

# A 7B forward on a ZeroGPU slice, eager bf16, with headroom; measured figures are in docs/.
SECONDS_PER_FORWARD = 0.04
SECONDS_FIXED = 10.0  # attach, warm-up, the first prefill
MIN_SECONDS, MAX_SECONDS = 20, 300


def available() -> bool:
    return importlib.util.find_spec("spaces") is not None


def worst_case_forwards(max_new_tokens: int, steps_ratio: float, baseline: bool) -> int:
    """Planned diffusion needs at most one forward per plan token and steps_ratio per span
    token; the AR baseline one per token."""
    forwards = int(max_new_tokens * max(1.0, steps_ratio)) + 1
    return forwards + (max_new_tokens + 1 if baseline else 0)


def request_seconds(max_new_tokens: int, steps_ratio: float = 1.0, baseline: bool = False,
                    runs: int = 1) -> int:
    """The GPU duration to ask ZeroGPU for: `runs` runs (a sweep) of these settings."""
    forwards = worst_case_forwards(max_new_tokens, steps_ratio, baseline) * max(1, runs)
    seconds = SECONDS_FIXED + forwards * SECONDS_PER_FORWARD
    return int(min(MAX_SECONDS, max(MIN_SECONDS, round(seconds))))


def on_gpu(fn, duration):
    """`spaces.GPU(duration=duration)(fn)` when spaces is importable, else `fn` itself.

    `duration` takes the same arguments as `fn` and returns seconds. Generator functions stay
    generators, so streaming still works.
    """
    if not available():
        return fn
    import spaces

    wrapped = spaces.GPU(duration=duration)(fn)
    if inspect.isgeneratorfunction(fn) and not inspect.isgeneratorfunction(wrapped):
        @functools.wraps(fn)
        def stream(*args, **kwargs):
            yield from wrapped(*args, **kwargs)
        return stream
    return wrapped


def friendly_error(err: BaseException) -> str | None:
    """A visitor-facing line for ZeroGPU quota/duration failures; None for anything else."""
    text = str(err).lower()
    if "quota" in text:
        return ("The free GPU quota of this Space is used up for now. Try again later, sign in "
                "for a larger quota, or lower max new tokens and the sweep size.")
    if "duration" in text or "timeout" in text or "time limit" in text:
        return ("The request needed more GPU time than ZeroGPU allows. Lower max new tokens, "
                "the step ratio or the sweep size, and try again.")
    return None


def duration_from(endpoint, runs: int = 1):
    """A `duration` callable for the handler of `endpoint` (a row of pdiff.app.endpoints): it
    reads max_new_tokens, steps_ratio and compare_ar from the handler's arguments by the row's
    input names (a missing one: 1.0, no baseline). Unreadable values ask for the most."""
    def seconds(*args):
        try:
            named = endpoint.named(args)
            knobs = Knobs.named(named)
            return request_seconds(int(knobs.max_new_tokens), float(knobs.steps_ratio),
                                   bool(named.get("compare_ar", False)), runs)
        except (TypeError, ValueError, OverflowError):
            return MAX_SECONDS
    return seconds
