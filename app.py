"""Planned Diffusion, live: the web app. Layout and event wiring only; the logic is pdiff.app.

Run `python app.py`. The model comes from an allow-list set by the operator:
PDIFF_MODEL = bundled (default) | a released Planned Diffusion id | a local checkpoint folder.
Other settings: PDIFF_AR_MODEL, PDIFF_DEVICE, PDIFF_DTYPE, PDIFF_MAX_NEW_TOKENS, PDIFF_QUEUE_SIZE,
PDIFF_CONCURRENCY, PDIFF_SWEEP_LIMIT, PDIFF_THREADS, PDIFF_CACHE_MB, GRADIO_SERVER_NAME, GRADIO_SERVER_PORT.

`build_demo(app)` lays out the page for a `pdiff.app.handlers.DemoApp` and wires its endpoints by
name; `load_app()` reads the settings, loads the models and times the machine. Nothing loads at
import: `python app.py` (a Space's entry too) does both under `__main__`, and tests build the
page in-process from a tiny model.

It and its gradio layer (`gradio_layer.py`: the frame adapters and the patches, applied when it
is imported) are the only modules that import gradio. It computes nothing: every value it shows
comes from the DemoApp, and every endpoint it wires is a row of `pdiff.app.endpoints`.
"""

from __future__ import annotations

import atexit
import inspect
import json
import logging
import os
import signal
import time
from collections.abc import Mapping

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from gradio_layer import APP_KWARGS, called, streamed  # noqa: E402  (applies its patches)
from pdiff.app import zerogpu  # noqa: E402
from pdiff.app.chart import chart_figure  # noqa: E402
from pdiff.app.endpoints import ENDPOINTS, Endpoint, bind  # noqa: E402
from pdiff.app.facts import plan_editor_note, scope_line  # noqa: E402
from pdiff.app.fold import RunView  # noqa: E402
from pdiff.app.frames import replay_position  # noqa: E402
from pdiff.app.handlers import DemoApp  # noqa: E402
from pdiff.app.inputs import (  # noqa: E402
    MAX_STEPS_RATIO,
    PLAN_HEADERS,
    REFERENCE_SCHEDULE,
    default_schedule,
    schedule_note,
    threshold_props,
)
from pdiff.app.machine import start_machine  # noqa: E402
from pdiff.app.playback import SPEEDS, speed_label  # noqa: E402
from pdiff.app.settings import CSS_PATH, SettingsError, load_models, settings_from_env  # noqa: E402
from pdiff.app.speed import capture_note, speed_note  # noqa: E402
from pdiff.app.view import legend_html, stats_html  # noqa: E402
from pdiff.config import DECODING_KNOBS, LIMITS, SCHEDULES, UNMASK_SCORES, GenerationConfig  # noqa: E402

log = logging.getLogger("pdiff.app")

HOW_IT_WORKS = """
**Planned Diffusion** answers in rounds. First the model writes a short **plan** autoregressively,
one token at a time: a few *promises*, each a topic and a length (in units of
`length scale` tokens). When the plan closes, one block of masks opens per promise, and all blocks
are filled **in parallel** by masked diffusion: every denoise step commits some masked slots in
every span at once. A round ends with `<sync/>` (plan again, now seeing the written spans) or
with the end of the answer.

Fewer model calls come from the spans: a span of *L* tokens takes about *L × steps ratio* calls
instead of *L*, and all spans share those calls. With **sparse** attention a span sees the prompt, the plan
and itself, but not its sibling spans (the picture below, for the last round); **dense** lets the
spans of a round see each other. The **critical path** counts the sequential model calls; the
timeline under the spans draws each one.

Fewer calls are faster only if a call over many tokens is not much slower than a call over one.
"""

TRACE_IN = "trace_in"  # the upload control; the API calls its value trace_file
STOP_GRACE_MS = 500  # a run stopped by its session's flag ends within one event; then gradio's cancel


# --- start-up: settings, models, machine ---------------------------------------------------------


def load_app(environ: Mapping[str, str] = os.environ) -> tuple[DemoApp, str]:
    """The app of the operator's settings, and a line on this machine's forward cost."""
    try:
        settings = settings_from_env(environ)
        t0 = time.perf_counter()
        models = load_models(settings)
        # threads and the forward cost factor, measured once on this machine (a few seconds at most)
        machine = start_machine([e for e in (models.pd, models.ar) if e is not None], settings.device,
                                settings.concurrency, settings.threads)
        app = DemoApp(models, settings, device=machine.cost.device)
        # Gradio keeps uploads and served files in one folder (GRADIO_TEMP_DIR, else <temp>/gradio):
        # it and the trace folder stay under PDIFF_CACHE_MB together, oldest files going first.
        app.cap_cache(gr.utils.get_upload_folder())
    except SettingsError as err:
        raise SystemExit(f"pdiff app: {err}") from None
    log.info("model %s loaded on %s in %.1f s; threads: %s; %s", settings.model, settings.device,
             time.perf_counter() - t0, machine.policy.describe() if machine.policy else "torch default",
             speed_note(machine.cost))
    return app, speed_note(machine.cost) + capture_note(models.pd.graphs)


# --- the page ------------------------------------------------------------------------------------


def _html(elem_id: str, label: str, value: str = "") -> gr.HTML:
    return gr.HTML(value, label=label, elem_id=elem_id, js_on_load=None, min_height=24)


def _header(app: DemoApp) -> None:
    gr.Markdown(f"# Planned Diffusion, live\nA short autoregressive **plan**, then every promised "
                f"**span** filled in parallel by diffusion. Model: `{app.models.display_name}` on "
                f"`{app.settings.device}`; quality on the chart: {app.models.quality_label}.")
    gr.Markdown(scope_line(app.models.kind, app.models.display_name), elem_id="scope")
    gr.HTML(legend_html(), js_on_load=None)


def _controls(app: DemoApp) -> dict:
    """The prompt, the buttons and every knob; the knobs start at the checkpoint's default."""
    c = {}
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=300):
            c["prompt"] = gr.Textbox(label="Prompt", lines=1, max_lines=6, elem_id="prompt",
                                     placeholder="Type an instruction, then press Enter or Generate",
                                     value=app.examples[0] if app.examples else "")
            with gr.Row():
                c["generate_btn"] = gr.Button("Generate", variant="primary", elem_id="generate")
                c["stop_btn"] = gr.Button("Stop", variant="stop", elem_id="stop")
                c["compare_ar"] = gr.Checkbox(label="Compare with AR", elem_id="compare",
                                           info="Also run the autoregressive baseline on this prompt")
            if app.examples:
                gr.Examples([[p] for p in app.examples], inputs=[c["prompt"]], label="Examples")
        with gr.Column(scale=2, min_width=280):
            c.update(_schedule(app))
            with gr.Accordion("Advanced", open=False):
                c.update(_advanced(app))
    return c


def _schedule(app: DemoApp) -> dict:
    """The schedule knobs, the checkpoint's schedule note and the two schedule buttons."""
    default = default_schedule(app.models.pd)  # the checkpoint's measured best point
    c = {}
    c["steps_ratio"] = gr.Slider(LIMITS["steps_ratio"][0], MAX_STEPS_RATIO, value=default["steps_ratio"],
                                 step=0.01, label="Step ratio", elem_id="steps_ratio",
                                 info="Denoise steps per token of the longest span: lower is "
                                      "faster (several tokens per step), 1 is one token per "
                                      "step. Under the adaptive schedule only a cap: a round ends "
                                      "once the threshold has committed every slot")
    with gr.Row():
        c["threshold"] = gr.Slider(*LIMITS["threshold"], value=default["threshold"], step=0.01,
                                   elem_id="threshold", **threshold_props(default["schedule"]))
        c["schedule"] = gr.Radio(list(SCHEDULES), value=default["schedule"], label="Schedule",
                                 elem_id="schedule", info="reference: no threshold; paper: the "
                                                          "threshold adds steps; adaptive: it skips steps")
    gr.Markdown(schedule_note(app.models.pd), elem_id="schedule_note")
    with gr.Row():
        c["default_btn"] = gr.Button("Default schedule", size="sm", elem_id="schedule_default")
        c["reference_btn"] = gr.Button("Reference schedule", size="sm", elem_id="schedule_reference")
    return c


def _advanced(app: DemoApp) -> dict:
    """The other knobs, at GenerationConfig's defaults (length scale: the checkpoint's own)."""
    d, scale, cap = GenerationConfig(), app.models.pd.length_scale, app.settings.max_new_tokens
    return {
        "unmask": gr.Radio(list(UNMASK_SCORES), value=d.unmask, label="Unmasking score",
                           info="How masked slots are ranked for committing"),
        "temperature": gr.Slider(*LIMITS["temperature"], value=d.temperature, step=0.05, label="Temperature",
                                 info="0 is greedy; higher is more varied"),
        "top_p": gr.Slider(*LIMITS["top_p"], value=d.top_p, step=0.01, label="Top-p",
                           info="Nucleus mass sampled from; 1 turns it off"),
        "seed": gr.Number(d.seed, precision=0, minimum=0, maximum=LIMITS["seed"][1], label="Seed",
                          info="Same seed, same settings: same answer"),
        "length_scale": gr.Slider(*LIMITS["length_scale"], value=scale, step=1, label="Length scale",
                                  info=f"Tokens per plan length unit; this model was trained with {scale}"),
        "attention": gr.Radio(["sparse", "dense"], value=d.attention, label="Span attention",
                              info="sparse: spans ignore each other (faster); dense: they see each other"),
        "use_cache": gr.Checkbox(d.use_cache, label="KV cache",
                                 info="Reuse the prefix's keys and values: same result, faster"),
        "max_new_tokens": gr.Slider(1, cap, value=min(d.max_new_tokens, cap), step=1, label="Max new tokens",
                                    info="Bound on plan, tags and spans: caps time and length"),
    }


def _lanes(app: DemoApp) -> dict:
    """The plan and span lanes, the AR lane, the answers, the stats and the replay controls."""
    c = {}
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=300):
            gr.Markdown("### Plan")
            c["plan"] = _html("plan-lane", "plan")
            gr.Markdown("### Spans")
            c["spans"] = _html("span-lanes", "spans")
            c["why"] = _html("why", "why")
            c["timeline"] = gr.Plot(show_label=False, elem_id="timeline", visible=False)  # a finished run's
        with gr.Column(scale=2, min_width=280):
            gr.Markdown(f"### Autoregressive baseline\n{app.models.baseline_note}.")
            c["baseline_btn"] = gr.Button("Run AR baseline", elem_id="baseline")
            c["ar_lane"] = _html("ar-lane", "AR lane")
    c["notices"] = _html("notices", "notices")
    # The answers get their own row: side by side on a wide page, and on a phone the AR answer
    # comes right after the planned answer's fact marks, not after every span card.
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=300):
            c["answer"] = gr.Textbox(label="Answer", lines=3, max_lines=12, buttons=["copy"],
                                     interactive=False, elem_id="answer")
            c["facts"] = _html("facts", "facts of the prompt")
        with gr.Column(scale=2, min_width=280):
            c["ar_answer"] = gr.Textbox(label="AR answer", lines=2, max_lines=8, buttons=["copy"],
                                        interactive=False, elem_id="ar-answer")
            c["ar_facts"] = _html("ar-facts", "facts of the prompt, AR")
            c["ar_stats"] = _html("ar-stats", "AR stats")
    gr.Markdown("### Stats")
    c["stats"] = _html("stats", "stats", stats_html(RunView()))
    with gr.Accordion("Result as JSON", open=False):
        c["stats_json"] = gr.JSON(label="stats", elem_id="stats-json")
    with gr.Row():
        # fixed props (a share of the run, in percent); the event it shows is the line beside it
        c["replay"] = gr.Slider(0, 100, value=0, step=1, label="Replay (% of the run)", elem_id="replay",
                                info="Drag to see the run part of the way through: 100 is its end")
        c["replay_at"] = gr.HTML(replay_position(0, 0)["replay_at"], label="replay step",
                                 elem_id="replay-step", js_on_load=None, min_height=24, scale=0,
                                 min_width=140)
        c["play_speed"] = gr.Radio([(speed_label(s), s) for s in SPEEDS], value=1.0, label="Play speed",
                                   elem_id="play-speed", scale=0, min_width=280)
        c["play_btn"] = gr.Button("▶ Play", scale=0, min_width=100, elem_id="play")
    return c


def _chart(app: DemoApp) -> dict:
    """The latency/quality chart and the sweep."""
    c = {}
    gr.Markdown("### Latency and quality")
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=300):
            c["chart"] = gr.Plot(chart_figure([], app.models.quality_label), label="chart", show_label=False,
                                 elem_id="chart")
        with gr.Column(scale=1, min_width=200):
            c["relative_view"] = gr.Checkbox(label="Relative view", elem_id="relative",
                                        info="Speedup and quality change vs the AR runs, with the "
                                             "paper's points")
            c["sweep_btn"] = gr.Button("Sweep", elem_id="sweep")
            gr.Markdown(f"Runs up to {app.settings.sweep_limit} step ratios × thresholds on this "
                        "prompt; the dashed line is the Pareto front.")
    return c


def _tools(app: DemoApp, speed: str) -> dict:
    """The plan editor, the trace download and upload, and how it works."""
    c = {}
    with gr.Accordion("Plan editor", open=True):
        gr.Markdown("Edit topics and lengths (units of the length scale); `ends with` is `sync` "
                    "(plan again after) or `end`. Then re-run diffusion with this plan.")
        gr.Markdown(plan_editor_note(app.models.kind), elem_id="plan-topics-note")
        c["plan_table"] = gr.Dataframe(app.example_plan or None, headers=PLAN_HEADERS,
                                       datatype=["number", "str", "number", "str"], type="array",
                                       interactive=True, elem_id="plan-table", show_label=False,
                                       wrap=True, column_widths=["21%", "33%", "23%", "23%"])
        c["rerun_btn"] = gr.Button("Re-run diffusion with this plan", elem_id="rerun")
    with gr.Accordion("Save or load a run", open=False):
        with gr.Row():
            c["trace_file"] = gr.File(label="Download this run (JSON trace)", interactive=False,
                                      elem_id="trace-out")
            c["trace_in"] = gr.File(label="Load a saved trace to replay", file_types=[".json"],
                                    elem_id="trace-in")
    with gr.Accordion("How it works", open=False):
        gr.Markdown(HOW_IT_WORKS + speed)
        c["visibility"] = gr.Plot(show_label=False, elem_id="visibility")
    return c


# --- the events ----------------------------------------------------------------------------------


def _wire(app: DemoApp, c: dict, trigger, row: Endpoint, gpu_runs: int | None = None,
          api_name: str | None = None, **options):
    """Wire `row` of the endpoint table to `trigger`, then its follow-up row; returns the event.
    The row's "run" is this trigger's own run state: the follow-up shows the run it started.
    `gpu_runs`: a model run, under ZeroGPU for that many runs' worth of time."""
    names = {**c, "run": gr.State(None)} if "run" in row.outputs and "run" not in c else c
    handler = bind(app, row)
    if inspect.isgeneratorfunction(handler):
        gpu = None if gpu_runs is None else zerogpu.duration_from(row, gpu_runs)
        handler = streamed(handler, row, names, gpu)
    else:
        handler = called(handler, row, names)
    inputs = [names[TRACE_IN if n == "trace_file" else n] for n in (*row.inputs, *row.echo)]
    event = trigger(handler, inputs, [names[n] for n in row.outputs], api_name=api_name,
                    api_visibility="public" if api_name else "private", **options)
    if row.then:  # a Stop cancels the run, not this step, which then shows where the run stood
        # no progress timer on its outputs: it takes milliseconds, and most of them it leaves as
        # the run drew them (under load the timer stood over the run's notices)
        _wire(app, names, event.then, ENDPOINTS[row.then], show_progress="hidden")
    return event


def _wire_runs(app: DemoApp, c: dict) -> list:
    """The endpoints, each followed by its after-run step; returns the events a Stop cancels."""
    model_run = dict(concurrency_id="model", gpu_runs=1)  # runs share PDIFF_CONCURRENCY slots
    e = ENDPOINTS
    return [
        _wire(app, c, c["generate_btn"].click, e["generate"], api_name="generate", **model_run),
        _wire(app, c, c["prompt"].submit, e["generate"], **model_run),  # Enter: the page's own
        _wire(app, c, c["rerun_btn"].click, e["rerun_plan"], api_name="rerun_plan", **model_run),
        _wire(app, c, c["baseline_btn"].click, e["baseline"], api_name="baseline", **model_run),
        _wire(app, c, c["sweep_btn"].click, e["sweep"], api_name="sweep", concurrency_id="model",
              gpu_runs=app.settings.sweep_limit),
        _wire(app, c, c["trace_in"].upload, e["replay_trace"], api_name="replay_trace",
              concurrency_id="replay"),
    ]


def _wire_views(app: DemoApp, c: dict, runs: list) -> None:
    """Replay, Stop, the relative chart and the schedule controls."""
    # Replays fold a bounded trace (pdiff.app.guard) and share their own slots, apart from runs.
    replay_slots = dict(concurrency_id="replay", concurrency_limit=app.settings.concurrency)
    e = ENDPOINTS
    runs.append(_wire(app, c, c["play_btn"].click, e["play"], **replay_slots))
    _wire(app, c, c["replay"].input, e["replay_step"], trigger_mode="always_last", **replay_slots)
    # Stop ends the session's run at its next event, and the run shows what it had. Half a second
    # later gradio's cancel ends what still waits in the queue (or is stuck in one long step): a
    # cancel alone closed the run under its frames, and the page marked every output "Error". A
    # run started in that half second is cancelled too, as it was by a cancel alone.
    stop = c["stop_btn"].click(app.stop, [c["session"]], None, api_visibility="private", queue=False)
    grace = f"() => new Promise(done => setTimeout(done, {STOP_GRACE_MS}))"
    stop.then(None, js=grace).then(None, cancels=runs)
    _wire(app, c, c["relative_view"].change, e["rechart"], concurrency_limit=None)
    # the threshold's props follow the schedule in the page itself: an update from the server
    # would leave a copy of the slider in the session each time (gradio_layer)
    props = {s: {"__type__": "update", **threshold_props(s)} for s in SCHEDULES}
    c["schedule"].change(None, [c["schedule"]], [c["threshold"]], js=f"(s) => ({json.dumps(props)})[s]",
                         api_visibility="private", queue=False)
    for button, s in ((c["default_btn"], default_schedule(app.models.pd)),
                      (c["reference_btn"], REFERENCE_SCHEDULE)):
        button.click(lambda s=s: tuple(s[n] for n in DECODING_KNOBS), None,
                     [c[n] for n in DECODING_KNOBS], api_visibility="private", queue=False)


def build_demo(app: DemoApp, speed: str = "") -> gr.Blocks:
    """The page for `app`, queued; `speed` is the machine's forward-cost line for "How it works"."""
    with gr.Blocks(title="Planned Diffusion", delete_cache=(3600, 7200)) as demo:
        c = {"session": gr.State(None, time_to_live=3 * 3600)}  # a visitor's runs, for 3 hours
        _header(app)
        c.update(_controls(app))
        c.update(_lanes(app))
        c.update(_chart(app))
        c.update(_tools(app, speed))
        _wire_views(app, c, _wire_runs(app, c))
    # One policy for every endpoint: through the queue, under its size and concurrency limits. The
    # direct REST routes (/gradio_api/run/..., which skip the queue) are closed for every queued
    # event; only the page's own instant control updates (queue=False, no model, no file) are not
    # queued.
    return demo.queue(default_concurrency_limit=app.settings.concurrency,
                      max_size=app.settings.queue_size, api_open=False)


def _exit_on_sigterm(*_) -> None:
    """SIGTERM (docker stop, a supervisor): run the exit clean-up (the trace folder goes; a
    SIGKILLed server's is removed at the next start), then leave. Not sys.exit: its SystemExit
    lands wherever the main thread is, and inside a callback that swallows exceptions (an
    import lock's weakref callback did, in CI) the server printed a traceback and kept running."""
    atexit._run_exitfuncs()  # the interpreter's own exit step, done now
    os._exit(0)


def launch(demo: gr.Blocks, app: DemoApp, block: bool = True) -> None:
    """Serve the page at the operator's address. `block=False` (a test's in-process server)
    returns once it serves, quietly, and leaves the process's SIGTERM alone."""
    if block:
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    demo.launch(server_name=app.settings.server_name, server_port=app.settings.server_port,
                css_paths=[CSS_PATH], max_file_size="25mb", footer_links=["api"],
                state_session_capacity=256, prevent_thread_lock=not block, quiet=not block,
                app_kwargs=dict(APP_KWARGS))  # gradio_layer's exact Stop reads its /cancel requests


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    APP, SPEED = load_app()
    demo = build_demo(APP, SPEED)
    launch(demo, APP)
