"""Replay playback: which frames Play shows, and how long each stays, at a chosen speed.

Play steps through a run's replay frames (the view after its first k events). At normal speed it
shows at most `max_frames` frames at `FRAME_RATE` a second, so any run plays in about ten
seconds; a speed of 2 plays the same events in half that time, by showing every other of those
frames rather than showing frames faster. `SPEEDS` are the page's choices; anything else is
refused with a message. This module knows nothing of gradio, runs or HTML.
"""

from __future__ import annotations

import math

SPEEDS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0)  # times the normal speed; 0.1: slow enough to narrate
FRAME_RATE = 15.0  # frames a second, at most


class PlaybackError(ValueError):
    """A speed the page does not offer; the message lists the ones it does."""


def speed_label(speed: float) -> str:
    """1.0 -> "1×", 0.5 -> "0.5×"."""
    return f"{speed:g}×"


def check_speed(speed) -> float:
    """`speed` as one of SPEEDS, or PlaybackError."""
    try:
        value = float(speed)
    except (TypeError, ValueError):
        value = math.nan
    if value not in SPEEDS:
        choices = ", ".join(speed_label(s) for s in SPEEDS)
        raise PlaybackError(f"playback speed must be one of {choices}; got {str(speed)[:20]!r}")
    return value


def play_schedule(n: int, speed, max_frames: int) -> tuple[list[int], float]:
    """The frames (event counts 0..n) Play shows for a run of `n` events at `speed`, and the
    pause in seconds after each frame but the last."""
    speed = check_speed(speed)
    stride = max(1, math.ceil(n / max_frames))  # events a frame at normal speed
    rate = stride * FRAME_RATE * speed  # events a second
    step = max(1, math.ceil(rate / FRAME_RATE))  # events a frame, at most FRAME_RATE frames a second
    return [*range(0, n, step), n], step / rate
