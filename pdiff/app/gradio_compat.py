"""Work-arounds for gradio 6.31 (no model code; imported by app.py). Three small patches remain,
each because no public gradio API does its job; the line numbers are gradio 6.31.0's.

`pin_session_block_ids`: a session must not grow with each run.
  An output that gets a prop update (`gr.skip()`, `gr.update(...)`, or an output left out of a
  returned dict) is replaced in the session by a fresh copy of the component, stored under the
  output's id but carrying a new id (blocks.py:2337). The next plain value for that output, or
  the next read of it as an input, stores the copy again under its new id, with the value
  (blocks.py:2353 and 2385; 2145 and 2176). Every live frame skips the chart and every after-run
  step skips the controls, so each run left copies (one Plot and its figure, about 0.2 MB) in the
  visitor's session for as long as it lived. No event or component argument avoids it:
  `postprocess=False` avoids the output side only, inputs are still re-stored, and sending
  updates instead of values would change what the API returns. The patch pins the copy to the
  id it is stored under.

`exact_cancels`: a Stop must cancel exactly its run.
  The /cancel route (the page's Stop, a client's `job.cancel()`) cancels every running task of
  the session and function (routes.py:1719, utils.py:1157), so a Stop sent as the same client
  started a new run killed the new run. A flag in the session that the run checks between frames
  cannot help: gradio cancels the new run's task from outside, before the run sees any flag, and
  that task then never answers its client. The route's request names its event, and every task
  is named by its event (utils.py:1175): the patch cancels that event's task alone. Without it,
  at PDIFF_CONCURRENCY=2 (two runs of a session running at once), a Stop sent as a new run
  started lost the new run in 19 of 20 trials (tests/test_hostile.py).

`strict_inputs`: raw input is checked once, before gradio preprocesses it, and every refusal is
  a message without a traceback. `Blocks.preprocess_data` is where each raw value meets the
  session's copy of its component, before the components' preprocess (blocks.py:2125); its first
  step refuses a short list with a ValueError (blocks.py:2134 and 2039: a traceback and no useful
  message). gradio has no public hook that early: an event's `validator=` runs after preprocess
  (queueing.py:1161, where "abc" for a Slider has already failed) and answers the queue join
  with HTTP 422 (routes.py:1707), not with a message in the event's stream. The check also
  refuses a call of a page-only function (Stop's, with no backend: blocks.py:1905 raises an
  IndexError) and an out-of-range number (in gradio's own words, without the traceback its
  Error prints: queueing.py:887), so `call_function` and `Number.raise_if_out_of_bounds` are
  no longer patched.

tests/test_gradio_compat.py fails on any other gradio version, checks that each internal is still
spelled as the patch reads it, and checks each patch's effect in-process.
"""

from __future__ import annotations

# The gradio these patches were read against, line by line; tests/test_gradio_compat.py fails
# on any other, and checks that the internals each patch relies on are still there.
WRITTEN_FOR = "6.31.0"

PAGE_ONLY = ("this control works in the page only (Stop cancels the page's runs); "
             "to stop an API job, cancel that job")


# --- a session does not grow with each run ----------------------------------------------------


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


# --- a Stop ends exactly its run --------------------------------------------------------------


def exact_cancels() -> None:
    """Make gradio's /cancel (the Stop button, a client's job.cancel()) end only the event it
    names (idempotent). It reads the event id from the route's `body`, its caller's local;
    without one it does what gradio does."""
    import asyncio
    import sys

    import gradio.routes as routes

    original = routes.cancel_tasks
    if getattr(original, "_pdiff_exact", False):
        return

    async def cancel_tasks(task_ids: set[str]) -> list[str]:
        body = sys._getframe(1).f_locals.get("body")  # the /cancel route's CancelBody
        event_id = getattr(body, "event_id", None)
        if not event_id:
            return await original(task_ids)
        matched = []
        for task in asyncio.all_tasks():
            task_id, _, task_event = task.get_name().partition("<gradio-sep>")
            if task_id in task_ids and task_event == event_id:
                task.cancel()
                matched.append(task)
        await asyncio.gather(*matched, return_exceptions=True)
        return [event_id] if matched else []

    cancel_tasks._pdiff_exact = True
    routes.cancel_tasks = cancel_tasks


# --- every input checked, every refusal a message -----------------------------------------------


def refusal(fn, blocks, inputs) -> str | None:
    """Why a call of `fn` with raw `inputs` for its input `blocks` (as this session holds them)
    is refused, or None: a page-only function, too few values, or a value of the wrong type or
    out of its range."""
    if fn is None:
        return PAGE_ONLY
    if len(inputs) < len(blocks):
        return f"this endpoint takes {len(blocks)} values; got {len(inputs)}"
    for block, value in zip(blocks, inputs, strict=False):
        message = None if block.stateful else _checked(block, value)
        if message:
            return message
    return None


def _checked(block, value) -> str | None:
    """Why a raw value is wrong for its component (naming the control), or None."""
    from gradio.components import Checkbox, Number, Radio, Slider, Textbox
    from gradio.exceptions import Error

    name = getattr(block, "label", None) or type(block).__name__
    shown = str(value)[:20]
    if isinstance(block, (Number, Slider)):
        if value is None and isinstance(block, Number):
            return None  # an empty Number is None (gradio's own preprocess passes it on)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{name} must be a number; got {shown!r}"
        try:
            Number.raise_if_out_of_bounds(value, block.minimum, block.maximum)  # gradio's words
        except Error as err:
            return err.message
    elif isinstance(block, Checkbox):
        if not isinstance(value, bool):
            return f"{name} must be true or false; got {shown!r}"
    elif isinstance(block, Radio) and value is not None and not isinstance(value, str):
        # a number choice (Play speed 1.0) comes from the page as JSON: 1 for 1.0, never true
        if not any(value == v and isinstance(value, bool) == isinstance(v, bool)
                   for _, v in block.choices or ()):
            return f"{name} must be one of its choices; got {shown!r}"
    elif isinstance(block, Textbox) and value is not None and not isinstance(value, str):
        return f"{name} must be text; got {shown!r}"
    return None


def strict_inputs() -> None:
    """Check every raw input before gradio preprocesses it (idempotent): a `refusal` becomes a
    one-line message, with no traceback in the server log. The components are the session's
    own (the replay slider's maximum is set per run)."""
    from gradio.blocks import Blocks
    from gradio.exceptions import Error

    original = Blocks.preprocess_data
    if getattr(original, "_pdiff_strict", False):
        return

    async def preprocess_data(self, block_fn, inputs, state, explicit_call=False):
        blocks = [b if b.stateful or state is None else state.get(b._id, b) for b in block_fn.inputs]
        message = refusal(block_fn.fn, blocks, inputs)
        if message:
            raise Error(message, print_exception=False)  # a message for the visitor, no traceback
        return await original(self, block_fn, inputs, state, explicit_call)

    preprocess_data._pdiff_strict = True
    Blocks.preprocess_data = preprocess_data
