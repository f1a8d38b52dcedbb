"""Work-arounds for gradio 6 (no model code; imported by app.py): a per-session memory growth
(`pin_session_block_ids`), a Stop that cancelled the wrong run (`exact_cancels`), and raw
inputs that reached handlers unchecked or failed with a blank "Error" (`strict_inputs`).

The memory growth:
When a handler sends a prop update to an output (``gr.skip()``, ``gr.update(...)``, or an output
left out of a returned dict, which gradio turns into a skip), gradio stores a fresh copy of the
component in the session under the original id, but the copy carries a new id. The next plain
value for that output is then stored under the copy's new id as well, together with the value's
config. A streamed run skips the chart on every live frame and sets it at the end, so every run
added one Plot (and a copy of its figure) to the visitor's session: about 0.2 MB a run, for as
long as the session lives. Pinning the copy to the id it is stored under stops the growth.
"""

from __future__ import annotations

# The gradio these patches were read against, line by line; tests/test_gradio_compat.py fails
# on any other, and checks that the internals each patch relies on are still there.
WRITTEN_FOR = "6.31.0"


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
    names (idempotent).

    gradio 6's /cancel route cancels every running task of the session and function
    (`cancel_tasks({"<session>_<fn>"})`), so a Stop pressed as a new run started killed the new
    run instead. Every task is also named by its event id, and the route's request names the
    event to cancel: the replacement cancels the task of that event alone. It reads the event id
    from the route's `body`, its caller's local; without one it does what gradio does."""
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


def _refuse(message: str):
    from gradio.exceptions import Error

    return Error(message, print_exception=False)  # a message for the visitor, no traceback


def _checked(block, value) -> None:
    """Refuse a raw value of the wrong type for its component, naming the control."""
    from gradio.components import Checkbox, Number, Radio, Slider, Textbox

    name = getattr(block, "label", None) or type(block).__name__
    shown = str(value)[:20]
    if isinstance(block, (Number, Slider)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise _refuse(f"{name} must be a number; got {shown!r}")
    elif isinstance(block, Checkbox):
        if not isinstance(value, bool):
            raise _refuse(f"{name} must be true or false; got {shown!r}")
    elif isinstance(block, Radio) and value is not None and not isinstance(value, str):
        # a number choice (Play speed 1.0) comes from the page as JSON: 1 for 1.0, never true
        if not any(value == v and isinstance(value, bool) == isinstance(v, bool)
                   for _, v in block.choices or ()):
            raise _refuse(f"{name} must be one of its choices; got {shown!r}")
    elif isinstance(block, Textbox) and value is not None and not isinstance(value, str):
        raise _refuse(f"{name} must be text; got {shown!r}")


def strict_inputs() -> None:
    """Check every raw input before gradio preprocesses it (idempotent): a missing value, a
    text for a number, "false" for a checkbox or true for a seed is refused with a one-line
    message; gradio's own limit messages and a call of a page-only function (one with no backend,
    like Stop's cancel) are messages too, with no traceback in the server log."""
    from gradio.blocks import Blocks
    from gradio.components import Number

    original = Blocks.validate_inputs
    if getattr(original, "_pdiff_strict", False):
        return

    def validate_inputs(self, block_fn, inputs):
        if len(inputs) < len(block_fn.inputs):
            raise _refuse(f"this endpoint takes {len(block_fn.inputs)} values; got {len(inputs)}")
        for block, value in zip(block_fn.inputs, inputs, strict=False):
            if not block.stateful:
                _checked(block, value)
        original(self, block_fn, inputs)

    bounds = Number.raise_if_out_of_bounds

    def raise_if_out_of_bounds(num, minimum, maximum):
        try:
            bounds(num, minimum, maximum)
        except Exception as err:
            raise _refuse(str(err)) from None

    call = Blocks.call_function

    async def call_function(self, block_fn, *args, **kwargs):
        fn = self.fns[block_fn] if isinstance(block_fn, int) else block_fn
        if fn.fn is None:
            raise _refuse("this control works in the page only (Stop cancels the page's runs); "
                          "to stop an API job, cancel that job")
        return await call(self, block_fn, *args, **kwargs)

    validate_inputs._pdiff_strict = True
    Blocks.validate_inputs = validate_inputs
    Blocks.call_function = call_function
    Number.raise_if_out_of_bounds = staticmethod(raise_if_out_of_bounds)
