"""app.py's gradio layer: DemoApp frames as gradio outputs, and the gradio 6.31 work-arounds.

- `streamed`, `called`: the DemoApp handler of a row of `pdiff.app.endpoints` as a gradio
  handler; `_to_gradio` turns its `Frame` into the values of the event's outputs.
- The patches, applied once, when this module is imported (app.py imports it before it builds a
  page). Each exists because no public gradio API does its job; the line numbers are gradio
  6.31.0's, and tests/test_gradio_compat.py fails on any other gradio version, checks that each
  internal is still spelled as the patch reads it, and checks each patch's effect in-process.
  None reads a caller's frame.

A session does not grow with each run, and no patch is needed for it. gradio replaces an output
that gets a prop update (`gr.update(...)`, `gr.skip()`, an output left out) in the session by a
fresh copy of the component, stored under the output's id but carrying a new id
(blocks.py:2337). The next plain value for that output, or the next read of it as an input,
stores the copy a second time, under its new id (blocks.py:2353 and 2385; 2145 and 2176). So
`_to_gradio` keeps each output one kind of value for good: plain for what the API shows (a frame
that leaves it as it is sends the session's last value, `Session.screen`) and for what the
visitor edits (read back by the page-only steps that set it: `Endpoint.echo`), an update for
everything else; the threshold's props follow the schedule in the page (app.py). Measured in a
browser (tests/test_browser_session.py: every control of the page once per round, a trace load
among them; run with 3 rounds, where the test keeps 2): the session held 95 components after
each round; the code before, without the pin, grew by 80 a round (174, 254, 334, in rounds
without the trace load), one Plot and its figure among each run's copies.

`exact_cancels` (routes.cancel_tasks): a Stop must cancel exactly its run.
  The /cancel route (the page's Stop, a client's `job.cancel()`) cancels every running task of
  the session and function (routes.py:1719, utils.py:1157), so a Stop sent as the same client
  started a new run killed the new run. The route's request names its event, and every task is
  named by its event (utils.py:1175). `CancelNamesItsEvent`, an ASGI middleware that `launch`
  installs through gradio's public `app_kwargs`, reads that name from the request into a context
  variable; the patched `cancel_tasks` cancels that event's task alone (and, with no name, does
  what gradio does). Without it, at PDIFF_CONCURRENCY=2 (two runs of a session running at once),
  a Stop sent as a new run started lost the new run in 19 of 20 trials, and in 20 of 20 when
  measured again for issue 33 (tests/test_hostile.py::test_stop_ends_exactly_its_run_over_20_trials).

`strict_inputs` (Blocks.preprocess_data): raw input is checked once, before gradio preprocesses
  it, and every refusal is a message without a traceback. `Blocks.preprocess_data` is where each
  raw value meets the session's copy of its component, before the components' preprocess
  (blocks.py:2125); its first step refuses a short list with a ValueError (blocks.py:2134 and
  2039: a traceback and no useful message). gradio has no public hook that early: an event's
  `validator=` runs after preprocess (queueing.py:1161, where "abc" for a Slider has already
  failed) and answers the queue join with HTTP 422 (routes.py:1707), not with a message in the
  event's stream. The check also refuses a call of a page-only function (Stop's, with no
  backend: blocks.py:1905 raises an IndexError) and an out-of-range number (in gradio's own
  words, without the traceback its Error prints: queueing.py:887). Without it (measured for
  issue 33), 7 tests of tests/test_hostile.py fail (every handler in a fresh session, the Play
  speed, the five wrong-type values) and 2 of tests/test_reliability.py (a knob of the wrong type).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import json
from collections.abc import Mapping

import gradio as gr
import gradio.routes
from gradio.blocks import Blocks
from gradio.components import Checkbox, Number, Radio, Slider, Textbox
from gradio.exceptions import Error
from starlette.middleware import Middleware

from pdiff.app import zerogpu
from pdiff.app.endpoints import API_OUT, EDITABLE, Endpoint
from pdiff.app.frames import SKIP, Frame, Update
from pdiff.app.session import Session

# The gradio these patches were read against, line by line; tests/test_gradio_compat.py fails
# on any other, and checks that the internals each patch relies on are still there.
WRITTEN_FOR = "6.31.0"

PAGE_ONLY = ("this control works in the page only (Stop cancels the page's runs); "
             "to stop an API job, cancel that job")


# --- DemoApp frames as gradio outputs -------------------------------------------------------------


def _to_gradio(out: Frame, row: Endpoint, names: Mapping, screen: dict | None, echoed: Mapping):
    """A handler's frame as the values of its event's outputs (`row.outputs`, in order; `names`:
    the components by name). Each output is kept one kind of value for good, so that the
    visitor's session holds no copy of it per run (the module's docstring):
    - one the visitor edits (EDITABLE) is a plain value: left as it is, the value it was read as;
    - one the API shows (API_OUT) is a plain value: left as it is, the last value sent to this
      session (`screen`); a figure is sent as its JSON, made once;
    - any other is an update (gr.update), and left as it is, a skip."""
    if out.warning:
        gr.Warning(out.warning)
    changed = out.changed()
    unknown = sorted(set(changed) - set(row.outputs))
    if unknown:
        raise ValueError(f"{row.name} has no output {', '.join(unknown)}")
    values = [_value(name, changed.get(name, SKIP), names[name], screen, echoed) for name in row.outputs]
    return values[0] if len(values) == 1 else values


def _value(name: str, value, component, screen: dict | None, echoed: Mapping):
    """One output's value (`_to_gradio`)."""
    if isinstance(value, Update):
        return gr.update(**value.props)
    if component.stateful:
        return gr.skip() if value is SKIP else value
    if name in EDITABLE:
        return echoed.get(name, gr.skip()) if value is SKIP else value
    if name not in API_OUT:
        return gr.skip() if value is SKIP else gr.update(value=value)
    if value is SKIP:
        value = SKIP if screen is None else screen.get(name, SKIP)
        return gr.skip() if value is SKIP else value  # nothing sent yet: the page's first value stays
    if isinstance(component, gr.Plot) and value is not None:
        value = component.postprocess(value)  # PlotData, which gradio sends as it is
    if screen is not None:
        screen[name] = value
    return value


def _sender(row: Endpoint, names: Mapping, args: tuple):
    """For one call of `row` with its raw `args` (the row's inputs, then the values of
    `row.echo`): the row's own inputs, and what turns each of its frames into gradio values
    (against the screen of the session the frame carries, else of the one the call was given)."""
    n = len(row.inputs)
    echoed = dict(zip(row.echo, args[n:]))
    given = args[row.inputs.index("session")] if "session" in row.inputs else None

    def send(out: Frame):
        session = out.session if isinstance(out.session, Session) else given
        return _to_gradio(out, row, names, session.screen if isinstance(session, Session) else None, echoed)
    return args[:n], send


def streamed(method, row: Endpoint, names: Mapping, gpu_seconds=None):
    """A generator handler of `row` as a gradio streaming handler, called with the row's inputs
    and then the values of `row.echo`. It owns the run's frames: it closes them when the run
    ends, fails or is cancelled (Stop closes this handler).

    With `gpu_seconds` it runs under ZeroGPU's spaces.GPU when that package is installed.
    """
    run = method if gpu_seconds is None else zerogpu.on_gpu(method, gpu_seconds)

    @functools.wraps(method)
    def handler(*args):
        own, send = _sender(row, names, args)
        frames = run(*own)
        try:
            for out in frames:
                yield send(out)
        except Exception as err:
            friendly = zerogpu.friendly_error(err)
            if friendly is None:
                raise
            raise gr.Error(friendly) from None
        finally:
            frames.close()
    return _echoing(handler, row)


def called(method, row: Endpoint, names: Mapping):
    """A handler of `row` that returns one frame, as a gradio handler (called as `streamed`'s)."""
    @functools.wraps(method)
    def handler(*args):
        own, send = _sender(row, names, args)
        return send(method(*own))
    return _echoing(handler, row)


def _echoing(handler, row: Endpoint):
    """`handler`, showing gradio the row's parameters followed by its echoed outputs."""
    signature = inspect.signature(handler)
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    echo = [inspect.Parameter(f"shown_{n}", kind, default=None) for n in row.echo]
    handler.__signature__ = signature.replace(parameters=[*signature.parameters.values(), *echo])
    return handler


# --- a Stop ends exactly its run --------------------------------------------------------------

_cancelled_event: contextvars.ContextVar[str | None] = contextvars.ContextVar("pdiff_cancelled_event",
                                                                              default=None)
MAX_CANCEL_BODY = 4096  # a /cancel body is three short fields; a larger one names no event


class CancelNamesItsEvent:
    """ASGI middleware: a POST to gradio's /cancel route sets `_cancelled_event` to the event id
    its JSON body names, for the rest of that request; every other request passes untouched."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].endswith("/cancel"):
            await self.app(scope, receive, send)
            return
        messages, body, more = [], b"", True
        while more:
            message = await receive()
            messages.append(message)
            body += message.get("body", b"")
            more = message.get("more_body", False) and message["type"] == "http.request"
        token = _cancelled_event.set(_event_id(body))
        replay = iter(messages)

        async def replayed():  # the route reads the same body again
            return next(replay, None) or await receive()
        try:
            await self.app(scope, replayed, send)
        finally:
            _cancelled_event.reset(token)


def _event_id(body: bytes) -> str | None:
    if len(body) > MAX_CANCEL_BODY:
        return None
    try:
        event_id = json.loads(body).get("event_id")
    except (ValueError, AttributeError):
        return None
    return event_id if isinstance(event_id, str) and event_id else None


_cancel_tasks = gradio.routes.cancel_tasks


async def _exact_cancel_tasks(task_ids: set[str]) -> list[str]:
    """routes.cancel_tasks, limited to the task of the event the /cancel request names."""
    event_id = _cancelled_event.get()
    if event_id is None:
        return await _cancel_tasks(task_ids)
    matched = []
    for task in asyncio.all_tasks():
        task_id, _, task_event = task.get_name().partition("<gradio-sep>")
        if task_id in task_ids and task_event == event_id:
            task.cancel()
            matched.append(task)
    await asyncio.gather(*matched, return_exceptions=True)
    return [event_id] if matched else []


# What `launch` passes to gradio's FastAPI app (Blocks.launch's public `app_kwargs`).
APP_KWARGS = {"middleware": [Middleware(CancelNamesItsEvent)]}


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


_preprocess_data = Blocks.preprocess_data


async def _strict_preprocess_data(self, block_fn, inputs, state, explicit_call=False):
    """Blocks.preprocess_data, after `refusal` of the raw inputs: a one-line message, with no
    traceback in the server log. The components are the session's own copies."""
    blocks = [b if b.stateful or state is None else state.get(b._id, b) for b in block_fn.inputs]
    message = refusal(block_fn.fn, blocks, inputs)
    if message:
        raise Error(message, print_exception=False)  # a message for the visitor, no traceback
    return await _preprocess_data(self, block_fn, inputs, state, explicit_call)


# --- applied once, at import --------------------------------------------------------------------

gradio.routes.cancel_tasks = _exact_cancel_tasks
Blocks.preprocess_data = _strict_preprocess_data
