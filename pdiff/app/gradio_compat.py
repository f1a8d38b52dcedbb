"""A work-around for a gradio 6 per-session memory growth (no model code; imported by app.py).

When a handler sends a prop update to an output (``gr.skip()``, ``gr.update(...)``, or an output
left out of a returned dict, which gradio turns into a skip), gradio stores a fresh copy of the
component in the session under the original id, but the copy carries a new id. The next plain
value for that output is then stored under the copy's new id as well, together with the value's
config. A streamed run skips the chart on every live frame and sets it at the end, so every run
added one Plot (and a copy of its figure) to the visitor's session: about 0.2 MB a run, for as
long as the session lives. Pinning the copy to the id it is stored under stops the growth.
"""

from __future__ import annotations


def pin_session_block_ids() -> None:
    """Make gradio's session copies of a component keep the id they are stored under (idempotent)."""
    from gradio.blocks import Block
    from gradio.state_holder import SessionState

    original = SessionState.__setitem__
    if getattr(original, "_pdiff_pinned", False):
        return

    def __setitem__(self, key, value):
        if isinstance(value, Block) and value._id != key and key in self.blocks_config.blocks:
            value._id = key
        original(self, key, value)

    __setitem__._pdiff_pinned = True
    SessionState.__setitem__ = __setitem__
