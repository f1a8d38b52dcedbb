"""The page's endpoints, in one table: each one's name, inputs, knob group, outputs and follow-up.

A row's `name` is both the `DemoApp` method behind it and, for the public rows, its
gradio_client `api_name`; its `inputs` are the parameter names the API shows, in order. They are
a few named inputs around one knob group of `pdiff.config` (the knobs are spelled once, in
GenerationConfig), so that `bind` can hand the method one `Knobs` value. Its `outputs` are the
page's component names ("run" is the event's own run state, one per trigger); `then` names the
row that follows it (its after-run step). app.py wires every row from here; by hand it wires
only Stop (no outputs, and no queue) and the schedule controls (which set knobs in the page).
`zerogpu` reads a request's settings by these names, and a loaded trace restores the controls
named here (`CONTROLS`).

An output the visitor edits (`EDITABLE`: the controls, the plan editor, the replay slider) is an
output of page-only rows alone, and each such row either sets it in every frame or also reads
it (`echo`), to send back the value it read when it leaves it as it is (see gradio_layer). No
gradio here.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

from pdiff.config import AR_KNOBS, PLANNED_KNOBS, SWEEP_KNOBS, Knobs


@dataclass(frozen=True)
class Endpoint:
    name: str  # the DemoApp method (unless `method` says), and the API name of a public row
    before: tuple[str, ...]  # the inputs before the knobs
    knobs: tuple[str, ...] = ()  # a knob group (pdiff.config): the method's `knobs` argument
    after: tuple[str, ...] = ()  # the inputs after the knobs, each with a default
    outputs: tuple[str, ...] = ()
    then: str | None = None  # the row that follows this one on the page
    public: bool = True  # in the API (gradio_client), or the page's own step
    method: str | None = None  # the DemoApp method, when it is not `name`
    echo: tuple[str, ...] = ()  # outputs the visitor edits that the step may leave: it reads them too

    @property
    def inputs(self) -> tuple[str, ...]:
        """The parameter names, in the API's order."""
        return (*self.before, *self.knobs, *self.after)

    def signature(self) -> inspect.Signature:
        """The signature the API shows: the named inputs, the `after` ones with their defaults."""
        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
        return inspect.Signature(
            [inspect.Parameter(n, kind) for n in (*self.before, *self.knobs)]
            + [inspect.Parameter(n, kind, default=DEFAULTS[n]) for n in self.after])

    def named(self, args: tuple) -> dict:
        """The arguments of one call by input name (a missing trailing one: its default)."""
        return {**{n: DEFAULTS[n] for n in self.after}, **dict(zip(self.inputs, args))}


DEFAULTS = {"compare_ar": False, "relative_view": False, "session": None}

RUN_OUT = ("plan", "spans", "answer", "stats", "notices", "stats_json", "ar_lane", "ar_answer",
           "ar_stats", "chart", "session", "facts", "ar_facts", "run")
VIEW_OUT = ("plan", "spans", "answer", "notices", "stats")
# The controls a loaded trace restores: the prompt and the knobs of /generate.
CONTROLS = ("prompt", *PLANNED_KNOBS)
EDITABLE = (*CONTROLS, "plan_table", "replay")  # outputs that are also the visitor's inputs
AFTER_OUT = ("replay", "replay_at", "visibility", "plan_table", "trace_file", "notices", "stats",
             "stats_json", "timeline", "why", "run")
AFTER_ECHO = ("plan_table", "replay")  # an after-run step leaves them as they are at times

ENDPOINTS = {e.name: e for e in (
    Endpoint("generate", ("prompt",), PLANNED_KNOBS, ("compare_ar", "relative_view", "session"),
             RUN_OUT, then="after_run"),
    Endpoint("rerun_plan", ("prompt", "plan_table"), PLANNED_KNOBS,
             ("compare_ar", "relative_view", "session"), RUN_OUT, then="after_run"),
    Endpoint("baseline", ("prompt",), AR_KNOBS, ("relative_view", "session"),
             ("ar_lane", "ar_answer", "ar_stats", "notices", "stats_json", "chart", "session", "ar_facts"),
             then="timeline"),
    Endpoint("sweep", ("prompt",), SWEEP_KNOBS, ("relative_view", "session"),
             ("notices", "chart", "stats_json", "session")),
    Endpoint("replay_trace", ("trace_file",), after=("session",),
             outputs=(*VIEW_OUT, "stats_json", "session", "facts", "run"), then="after_trace"),
    # the after-run step of a run: the run it shows is the trigger's own
    Endpoint("after_run", ("session", "run"), public=False, outputs=AFTER_OUT, echo=AFTER_ECHO),
    # ... and of a loaded trace, which also puts the trace's prompt and settings in the controls
    Endpoint("after_trace", ("session", "run"), public=False, outputs=(*AFTER_OUT, *CONTROLS),
             method="after_run", echo=(*AFTER_ECHO, *CONTROLS)),
    Endpoint("timeline", (), after=("session",), outputs=("timeline", "why"), public=False),
    # Play sets the replay slider in every frame (but a refused speed's, which the page never
    # sends): it reads no echo
    Endpoint("play", ("session", "play_speed"), outputs=(*VIEW_OUT, "replay", "replay_at", "facts"),
             public=False),
    Endpoint("replay_step", ("replay", "session"), outputs=(*VIEW_OUT, "replay_at", "facts"), public=False),
    Endpoint("rechart", ("relative_view", "session"), outputs=("chart",), public=False),
)}
API_OUT = frozenset(n for e in ENDPOINTS.values() if e.public for n in e.outputs)  # what the API shows


def bind(app, endpoint: Endpoint) -> Callable:
    """`app`'s method for `endpoint`, called with the endpoint's inputs in order (as gradio
    calls it): the knob group becomes one `Knobs` value. It shows the endpoint's signature, so
    the API names its parameters as the table does; a generator method stays a generator."""
    method = getattr(app, endpoint.method or endpoint.name)

    def arguments(args: tuple) -> dict:
        named = endpoint.named(args)
        if endpoint.knobs:
            named["knobs"] = Knobs(**{k: named.pop(k) for k in endpoint.knobs})
        return named

    if inspect.isgeneratorfunction(method):
        def call(*args):
            yield from method(**arguments(args))
    else:
        def call(*args):
            return method(**arguments(args))
    call.__name__ = call.__qualname__ = endpoint.name
    call.__doc__ = method.__doc__
    call.__signature__ = endpoint.signature()
    return call
