"""gradio_layer (app.py's gradio layer) patches gradio internals, so these tests fail loudly when
a gradio upgrade moves what a patch relies on: the version the patches were read against, for
each patch the internal it wraps or reads as gradio's own source spells it, that no other
internal is patched, and each patch's effect, in-process. The effects on the real server (exact
Stop over 20 trials, per-session memory, one-line refusals) are tested in test_reliability.py
and test_hostile.py."""

from __future__ import annotations

import asyncio
import inspect
import json
import re

import gradio
import gradio as gr
import pytest
from gradio import blocks, routes, state_holder, utils
from gradio.components import number
from gradio.state_holder import SessionState

import gradio_layer
from pdiff.app.chart import chart_figure


def _source(module) -> str:
    return inspect.getsource(module)  # the file on disk: what a patch replaced is still there


def test_gradio_is_the_version_the_patches_were_read_against():
    """After a gradio upgrade, re-read each patch against the new gradio (and its test in
    test_reliability.py / test_hostile.py), then move gradio_layer.WRITTEN_FOR."""
    assert gradio.__version__ == gradio_layer.WRITTEN_FOR, (
        f"gradio {gradio.__version__} is installed; gradio_layer patches internals of "
        f"gradio {gradio_layer.WRITTEN_FOR}")


@pytest.mark.parametrize("module, patch, spelled", [
    # the exact cancel replaces routes.cancel_tasks, which the /cancel route calls by that name
    (routes, "_exact_cancel_tasks", r"async def cancel_event\(body: CancelBody\):\s+"
                              r"await cancel_tasks\(\{f\"\{body\.session_hash\}_\{body\.fn_index\}\"\}\)"),
    # ... and parses the task names gradio gives its event tasks
    (utils, "_exact_cancel_tasks",
     r"task\.set_name\(f\"\{session_hash\}_\{fn_index\}<gradio-sep>\{event_id\}\"\)"),
    # strict_inputs wraps Blocks.preprocess_data, whose first step is the length check ...
    (blocks, "_strict_preprocess_data", r"async def preprocess_data\(\s+self,\s+block_fn: BlockFunction,\s+"
                              r"inputs: list\[Any\],\s+state: SessionState \| None,\s+"
                              r"explicit_call: bool = False,\s+\):\s+"
                              r"state = state or SessionState\(self\)\s+"
                              r"self\.validate_inputs\(block_fn, inputs\)"),
    # ... which preprocesses with the session's copy of each component
    (blocks, "_strict_preprocess_data", r"if block\._id in state:\s+block = state\[block\._id\]"),
    # ... refuses a page-only function before call_function's IndexError
    (blocks, "_strict_preprocess_data", r"if not block_fn\.fn:\s+raise IndexError"),
    # ... and words an out-of-range number with gradio's own (unpatched) bounds check
    (number, "_strict_preprocess_data", r"def raise_if_out_of_bounds\(\s+num: float \| int, "
                              r"minimum: float \| int \| None, maximum: float \| int \| None\s+\) -> None:"),
], ids=lambda v: getattr(v, "__name__", None) if not isinstance(v, str) else None)
def test_each_patched_internal_is_still_spelled_as_the_patch_reads_it(module, patch, spelled):
    """The internal a patch wraps, or the caller whose local it reads, is in gradio's source as
    the patch expects it."""
    assert callable(getattr(gradio_layer, patch))
    assert re.search(spelled, _source(module)), (
        f"{module.__name__} changed: re-read gradio_layer.{patch} against it")


PATCHED = {  # each patched internal and what stands in its place
    (routes, "cancel_tasks"): gradio_layer._exact_cancel_tasks,
    (blocks.Blocks, "preprocess_data"): gradio_layer._strict_preprocess_data,
}


def test_importing_the_layer_applies_each_patch_and_no_other():
    """Each patched internal is the layer's own once it is imported, and the internals patched
    before (call_function and the Number bounds check before issue 21, the session's
    __setitem__ before issue 33) are gradio's own."""
    for (owner, name), patch in PATCHED.items():
        assert getattr(owner, name) is patch, f"{owner.__name__}.{name} is not patched"
    assert blocks.Blocks.call_function.__qualname__ == "Blocks.call_function"
    assert state_holder.SessionState.__setitem__.__qualname__ == "SessionState.__setitem__"
    assert number.Number.raise_if_out_of_bounds.__qualname__ == "Number.raise_if_out_of_bounds"


# --- each patch's effect, in-process -------------------------------------------------------------


@pytest.fixture(scope="module")
def page():
    """A page of the components strict_inputs checks: a run, its Stop, and an update of the
    replay slider's maximum."""
    with gr.Blocks() as demo:
        knobs = [gr.Slider(0.01, 4, label="Step ratio"),
                 gr.Number(0, precision=0, minimum=0, label="Seed"),
                 gr.Checkbox(label="Compare with AR"),
                 gr.Radio([("1×", 1.0), ("2×", 2.0)], label="Play speed"),
                 gr.Slider(0, 1, step=1, label="Replay step")]
        run = gr.Button().click(lambda *v: repr(v), knobs, gr.Textbox())
        gr.Button().click(None, cancels=[run])
        gr.Button().click(lambda: gr.update(maximum=10), None, knobs[-1])
    return demo, knobs


def _call(demo, fn, data, state):
    try:
        return asyncio.run(demo.process_api(fn, data, state=state))["data"][0]
    except gr.Error as err:
        assert not err.print_exception, "a refusal printed a traceback"
        return err.message


@pytest.mark.parametrize("data, answer", [
    ([1.0, 3, True, 1, 1], "(1.0, 3, True, 1, 1)"),  # the page's values pass (Play speed 1 for 1.0)
    ([1.0, None, True, 1.0, 0], "(1.0, None, True, 1.0, 0)"),  # an empty Number is None
    ([1.0, 3], "this endpoint takes 5 values; got 2"),
    (["abc", 3, True, 1.0, 0], "Step ratio must be a number; got 'abc'"),
    ([None, 3, True, 1.0, 0], "Step ratio must be a number; got 'None'"),
    ([1.0, True, True, 1.0, 0], "Seed must be a number; got 'True'"),
    ([1.0, 3, "false", 1.0, 0], "Compare with AR must be true or false; got 'false'"),
    ([1.0, 3, True, 7, 0], "Play speed must be one of its choices; got '7'"),
    ([-1.0, 3, True, 1.0, 0], "Value -1.0 is less than minimum value 0.01"),
    ([float("inf"), 3, True, 1.0, 0], "Value inf is greater than maximum value 4"),
    ([1.0, 3, True, 1.0, 5], "Value 5 is greater than maximum value 1"),
])
def test_raw_inputs_are_refused_in_one_line_before_preprocess(page, data, answer):
    """A missing value, a value of the wrong type or out of its range is one line naming the
    control (or gradio's own words for a limit), raised as a gr.Error that prints no traceback."""
    demo, _ = page
    fn = next(f for f in demo.fns.values() if len(f.inputs) == 5)
    assert answer in _call(demo, fn, data, SessionState(demo))


def test_a_bound_is_the_sessions_own(page):
    """After an update sets the replay slider's maximum to 10 in a session, 5 passes there and
    is still refused in another session."""
    demo, _ = page
    fns = list(demo.fns.values())
    run, update = fns[0], fns[-1]
    mine = SessionState(demo)
    _call(demo, update, [], mine)
    assert _call(demo, run, [1.0, 3, True, 1.0, 5], mine) == "(1.0, 3, True, 1.0, 5)"
    assert "greater than maximum value 1" in _call(demo, run, [1.0, 3, True, 1.0, 5], SessionState(demo))


def test_a_page_only_function_called_over_the_api_is_a_message(page):
    """Stop's functions (no backend) called through the API say so, not gradio's IndexError."""
    demo, _ = page
    no_backend = [f for f in demo.fns.values() if f.fn is None]
    assert len(no_backend) == 2  # the Stop click and its cancel event
    for fn in no_backend:
        assert _call(demo, fn, [], SessionState(demo)) == gradio_layer.PAGE_ONLY


def test_each_output_keeps_one_kind_of_value():
    """The frames of a run and of its after-run step, as the gradio layer sends them: an output
    the API shows is a plain value (left as it is: the session's last), one the visitor edits is
    the value it was read as, and any other is always an update. gradio keeps a copy of an
    output in the session each time an update is followed by a plain value (test_browser_session
    measures the page)."""
    from pdiff.app.endpoints import ENDPOINTS
    from pdiff.app.frames import Frame, Update
    from pdiff.app.session import Session

    names = {"chart": gr.Plot(), "notices": gr.HTML(), "plan_table": gr.Dataframe(), "replay": gr.Slider(),
             "replay_at": gr.HTML(), "timeline": gr.Plot(), "session": gr.State(), "run": gr.State()}
    names = {n: names.get(n, gr.HTML()) for r in ("generate", "after_run") for n in ENDPOINTS[r].outputs}
    session, figure = Session(), chart_figure([], "quality")
    generate = ENDPOINTS["generate"]

    def sent(row, out, echoed=None):
        values = gradio_layer._to_gradio(out, row, names, session.screen, echoed or {})
        return dict(zip(row.outputs, values))

    first = sent(generate, Frame(notices="<p>one</p>", chart=figure, session=session))
    assert first["chart"].plot == figure.to_json() and first["notices"] == "<p>one</p>"
    assert first["plan"] == gr.skip()  # nothing sent yet: the page's own value stays
    live = sent(generate, Frame(notices="<p>two</p>", session=session))
    assert live["chart"] is first["chart"] and live["notices"] == "<p>two</p>"
    after = ENDPOINTS["after_run"]
    rows = [[1, "intro", 2, "end"]]
    shown = sent(after, Frame(replay_at="event 3 of 3", timeline=Update({"visible": False})),
                 {"plan_table": rows, "replay": 40})
    assert (shown["plan_table"], shown["replay"], shown["notices"]) == (rows, 40, "<p>two</p>")
    assert shown["replay_at"] == gr.update(value="event 3 of 3")
    assert shown["timeline"] == gr.update(visible=False) and shown["trace_file"] == gr.skip()
    with pytest.raises(ValueError, match="after_run has no output chart"):
        sent(after, Frame(chart=figure), {"plan_table": rows, "replay": 40})


def _cancel_through_the_middleware(body: bytes, path: str = "/gradio_api/cancel"):
    """Two running tasks of session "s", function 3 (events "old" and "new"), then a POST of
    `body` to `path` through CancelNamesItsEvent, to a route that reads the body again and calls
    routes.cancel_tasks as gradio's /cancel does. Returns (what the route read, its result, which
    tasks were cancelled)."""
    async def route(scope, receive, send):
        read, more = b"", True
        while more:
            message = await receive()
            read += message.get("body", b"")
            more = message.get("more_body", False)
        seen.append(read)
        seen.append(await routes.cancel_tasks({"s_3"}))

    async def scenario():
        tasks = {e: asyncio.create_task(asyncio.sleep(30), name=f"s_3<gradio-sep>{e}")
                 for e in ("old", "new")}
        await asyncio.sleep(0)
        chunks = [body[:5], body[5:]]  # a body in two messages, as a client may send it

        async def receive():
            chunk = chunks.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

        scope = {"type": "http", "method": "POST", "path": path}
        await gradio_layer.CancelNamesItsEvent(route)(scope, receive, None)
        states = {e: t.cancelled() for e, t in tasks.items()}
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        return states

    seen = []
    states = asyncio.run(scenario())
    return seen[0], seen[1], states


def test_a_cancel_names_one_event():
    """A /cancel for one event cancels that event's task alone, though a second task of the
    same session and function runs beside it; the route still reads the whole body."""
    body = json.dumps({"session_hash": "s", "fn_index": 3, "event_id": "old"}).encode()
    read, cancelled, states = _cancel_through_the_middleware(body)
    assert read == body and cancelled == ["old"] and states == {"old": True, "new": False}


@pytest.mark.parametrize("body, path", [
    (b'{"session_hash": "s", "fn_index": 3}', "/gradio_api/cancel"),  # names no event
    (b"not json at all", "/gradio_api/cancel"),
    (b'{"event_id": "old"}', "/gradio_api/queue/join"),  # not the cancel route
])
def test_a_cancel_that_names_no_event_is_gradios_own(body, path):
    """Without an event named (or on any other route) gradio's cancel_tasks runs: every task
    of the session and function is cancelled."""
    read, cancelled, states = _cancel_through_the_middleware(body, path)
    assert read == body and sorted(cancelled) == ["new", "old"] and states == {"old": True, "new": True}
