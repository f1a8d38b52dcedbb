"""Planned Diffusion, live: the web app. Layout and event wiring only; the logic is pdiff.app.

Run `python app.py` (or `gradio app.py`). The model comes from an allow-list set by the operator:
PDIFF_MODEL = bundled (default) | a released Planned Diffusion id | a local checkpoint folder.
Other settings: PDIFF_AR_MODEL, PDIFF_DEVICE, PDIFF_DTYPE, PDIFF_MAX_NEW_TOKENS, PDIFF_QUEUE_SIZE,
PDIFF_CONCURRENCY, PDIFF_SWEEP_LIMIT, PDIFF_THREADS, PDIFF_CACHE_MB, GRADIO_SERVER_NAME, GRADIO_SERVER_PORT.

This is the only module that imports gradio. It computes nothing: every value it shows comes
from `pdiff.app.handlers.DemoApp`, whose endpoints it wires by name.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
import time

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from pdiff.app import gradio_compat, zerogpu  # noqa: E402
from pdiff.app.chart import chart_figure  # noqa: E402
from pdiff.app.facts import plan_editor_note, scope_line  # noqa: E402
from pdiff.app.frames import SKIP, WARNING, Update  # noqa: E402
from pdiff.app.handlers import DemoApp  # noqa: E402
from pdiff.app.inputs import (  # noqa: E402
    MAX_STEPS_RATIO,
    PLAN_HEADERS,
    REFERENCE_SCHEDULE,
    default_schedule,
    schedule_note,
)
from pdiff.app.machine import start_machine  # noqa: E402
from pdiff.app.playback import SPEEDS, speed_label  # noqa: E402
from pdiff.app.settings import CSS_PATH, SettingsError, load_models, settings_from_env  # noqa: E402
from pdiff.app.speed import speed_note  # noqa: E402
from pdiff.app.view import RunView, legend_html, stats_html  # noqa: E402
from pdiff.config import LIMITS, THRESHOLD_CHOICES, UNMASK_SCORES  # noqa: E402

gradio_compat.pin_session_block_ids()  # else every run grows the visitor's session
gradio_compat.exact_cancels()  # else a Stop also kills a run started as it was pressed
gradio_compat.strict_inputs()  # else a raw value of the wrong type gets a blank "Error"
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
try:
    SETTINGS = settings_from_env(os.environ)
    _t0 = time.perf_counter()
    MODELS = load_models(SETTINGS)
    # threads and the forward cost factor, measured once on this machine (a few seconds at most)
    MACHINE = start_machine([e for e in (MODELS.pd, MODELS.ar) if e is not None], SETTINGS.device,
                            SETTINGS.concurrency, SETTINGS.threads)
    APP = DemoApp(MODELS, SETTINGS, device=MACHINE.cost.device)
    # Gradio keeps uploads and served files in one folder (GRADIO_TEMP_DIR, else <temp>/gradio):
    # it and the trace folder stay under PDIFF_CACHE_MB together, oldest files going first.
    APP.cap_cache(gr.utils.get_upload_folder())
except SettingsError as err:
    raise SystemExit(f"pdiff app: {err}") from None
logging.getLogger("pdiff.app").info("model %s loaded on %s in %.1f s; threads: %s; %s", SETTINGS.model,
                                    SETTINGS.device, time.perf_counter() - _t0,
                                    MACHINE.policy.describe() if MACHINE.policy else "torch default",
                                    speed_note(MACHINE.cost))
PD = APP.models.pd
CAP = SETTINGS.max_new_tokens
DEFAULT = default_schedule(PD)  # the checkpoint's measured best point: the controls start there
# ZeroGPU durations, read by name from each handler's own arguments.
GPU_GENERATE = zerogpu.duration_from(APP.generate)
GPU_RERUN = zerogpu.duration_from(APP.rerun_plan)
GPU_BASELINE = zerogpu.duration_from(APP.baseline)
GPU_SWEEP = zerogpu.duration_from(APP.sweep, runs=SETTINGS.sweep_limit)

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
""" + speed_note(MACHINE.cost)


def _value(v):
    if v is SKIP:
        return gr.skip()
    if isinstance(v, Update):
        return gr.update(**v.props)
    return v


def _to_gradio(out: dict, ref=None) -> dict:
    """A handler's frame by component; "run" goes to the event's own run state `ref`."""
    if out.get(WARNING):
        gr.Warning(out[WARNING])
    names = {**C, "run": ref}
    return {names[name]: _value(v) for name, v in out.items()
            if name != WARNING and names.get(name) is not None}


def streamed(method, gpu_seconds=None, ref=None):
    """A DemoApp generator handler as a gradio streaming handler (same parameter names).

    With `gpu_seconds` it runs under ZeroGPU's spaces.GPU when that package is installed.
    """
    run = method if gpu_seconds is None else zerogpu.on_gpu(method, gpu_seconds)

    @functools.wraps(method)
    def handler(*args):
        frames = run(*args)
        try:
            for out in frames:
                yield _to_gradio(out, ref)
        except Exception as err:
            friendly = zerogpu.friendly_error(err)
            if friendly is None:
                raise
            raise gr.Error(friendly) from None
        finally:
            frames.close()  # Stop closes this handler; close the run (and the engine) with it
    return handler


def called(method, ref=None):
    @functools.wraps(method)
    def handler(*args):
        return _to_gradio(method(*args), ref)
    return handler


def _html(elem_id: str, label: str, value: str = "") -> gr.HTML:
    return gr.HTML(value, label=label, elem_id=elem_id, js_on_load=None, min_height=24)


with gr.Blocks(title="Planned Diffusion", delete_cache=(3600, 7200)) as demo:
    session = gr.State(None, time_to_live=3 * 3600)  # a visitor's runs, for 3 hours
    gr.Markdown(f"# Planned Diffusion, live\nA short autoregressive **plan**, then every promised "
                f"**span** filled in parallel by diffusion. Model: `{APP.models.display_name}` on "
                f"`{SETTINGS.device}`; quality on the chart: {APP.label}.")
    gr.Markdown(scope_line(APP.models.kind, APP.models.display_name), elem_id="scope")
    gr.HTML(legend_html(), js_on_load=None)

    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=300):
            prompt = gr.Textbox(label="Prompt", lines=1, max_lines=6, elem_id="prompt",
                                placeholder="Type an instruction, then press Enter or Generate",
                                value=APP.examples[0] if APP.examples else "")
            with gr.Row():
                generate_btn = gr.Button("Generate", variant="primary", elem_id="generate")
                stop_btn = gr.Button("Stop", variant="stop", elem_id="stop")
                compare = gr.Checkbox(label="Compare with AR", elem_id="compare",
                                      info="Also run the autoregressive baseline on this prompt")
            if APP.examples:
                gr.Examples([[p] for p in APP.examples], inputs=[prompt], label="Examples")
        with gr.Column(scale=2, min_width=280):
            steps_ratio = gr.Slider(LIMITS["steps_ratio"][0], MAX_STEPS_RATIO, value=DEFAULT["steps_ratio"],
                                    step=0.01, label="Step ratio", elem_id="steps_ratio",
                                    info="Denoise steps per token of the longest span: lower is "
                                         "faster (several tokens per step), 1 is one token per "
                                         "step. Under the adaptive rule only a cap: a round ends "
                                         "once the threshold has committed every slot")
            with gr.Row():
                threshold = gr.Slider(*LIMITS["threshold"], value=DEFAULT["threshold"], step=0.01,
                                      label="Confidence threshold",
                                      interactive=DEFAULT["threshold_rule"] != "off",
                                      info="Commit slots surer than this; ignored when the rule is off")
                threshold_rule = gr.Radio(list(THRESHOLD_CHOICES), value=DEFAULT["threshold_rule"],
                                          label="Threshold rule", elem_id="threshold_rule",
                                          info="off: reference schedule; paper: adds steps; "
                                               "adaptive: skips steps")
            gr.Markdown(schedule_note(PD), elem_id="schedule_note")
            with gr.Row():
                default_btn = gr.Button("Default schedule", size="sm", elem_id="schedule_default")
                reference_btn = gr.Button("Reference schedule", size="sm", elem_id="schedule_reference")
            with gr.Accordion("Advanced", open=False):
                unmask = gr.Radio(list(UNMASK_SCORES), value="entropy", label="Unmasking score",
                                  info="How masked slots are ranked for committing")
                temperature = gr.Slider(*LIMITS["temperature"], value=0.2, step=0.05,
                                        label="Temperature", info="0 is greedy; higher is more varied")
                top_p = gr.Slider(*LIMITS["top_p"], value=0.95, step=0.01, label="Top-p",
                                  info="Nucleus mass sampled from; 1 turns it off")
                seed = gr.Number(0, precision=0, minimum=0, maximum=LIMITS["seed"][1],
                                 label="Seed", info="Same seed, same settings: same answer")
                length_scale = gr.Slider(*LIMITS["length_scale"], value=PD.length_scale, step=1,
                                         label="Length scale", info="Tokens per plan length unit; "
                                         f"this model was trained with {PD.length_scale}")
                attention = gr.Radio(["sparse", "dense"], value="sparse", label="Span attention",
                                     info="sparse: spans ignore each other (faster); dense: they see "
                                          "each other")
                use_cache = gr.Checkbox(True, label="KV cache",
                                        info="Reuse the prefix's keys and values: same result, faster")
                max_new_tokens = gr.Slider(1, CAP, value=min(512, CAP), step=1,
                                           label="Max new tokens",
                                           info="Bound on plan, tags and spans: caps time and length")

    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=300):
            gr.Markdown("### Plan")
            plan_out = _html("plan-lane", "plan")
            gr.Markdown("### Spans")
            spans_out = _html("span-lanes", "spans")
            why_out = _html("why", "why")
            timeline_out = gr.Plot(show_label=False, elem_id="timeline")
        with gr.Column(scale=2, min_width=280):
            gr.Markdown(f"### Autoregressive baseline\n{APP.models.baseline_note}.")
            baseline_btn = gr.Button("Run AR baseline", elem_id="baseline")
            ar_lane = _html("ar-lane", "AR lane")
    notices = _html("notices", "notices")
    # The answers get their own row: side by side on a wide page, and on a phone the AR answer
    # comes right after the planned answer's fact marks, not after every span card.
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=300):
            answer = gr.Textbox(label="Answer", lines=3, max_lines=12, buttons=["copy"],
                                interactive=False, elem_id="answer")
            facts = _html("facts", "facts of the prompt")
        with gr.Column(scale=2, min_width=280):
            ar_answer = gr.Textbox(label="AR answer", lines=2, max_lines=8, buttons=["copy"],
                                   interactive=False, elem_id="ar-answer")
            ar_facts = _html("ar-facts", "facts of the prompt, AR")
            ar_stats = _html("ar-stats", "AR stats")

    gr.Markdown("### Stats")
    stats = _html("stats", "stats", stats_html(RunView()))
    with gr.Accordion("Result as JSON", open=False):
        stats_json = gr.JSON(label="stats", elem_id="stats-json")
    with gr.Row():
        replay = gr.Slider(0, 1, value=0, step=1, label="Replay step", interactive=False,
                           elem_id="replay", info="Drag to see the run after its first k events")
        play_speed = gr.Radio([(speed_label(s), s) for s in SPEEDS], value=1.0, label="Play speed",
                              elem_id="play-speed", scale=0, min_width=280)
        play_btn = gr.Button("▶ Play", scale=0, min_width=100, elem_id="play")

    gr.Markdown("### Latency and quality")
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=300):
            chart_out = gr.Plot(chart_figure([], APP.label), label="chart", show_label=False,
                                elem_id="chart")
        with gr.Column(scale=1, min_width=200):
            relative = gr.Checkbox(label="Relative view", elem_id="relative",
                                   info="Speedup and quality change vs the AR runs, with the "
                                        "paper's points")
            sweep_btn = gr.Button("Sweep", elem_id="sweep")
            gr.Markdown(f"Runs up to {SETTINGS.sweep_limit} step ratios × thresholds on this "
                        "prompt; the dashed line is the Pareto front.")

    with gr.Accordion("Plan editor", open=True):
        gr.Markdown("Edit topics and lengths (units of the length scale); `ends with` is `sync` "
                    "(plan again after) or `end`. Then re-run diffusion with this plan.")
        gr.Markdown(plan_editor_note(APP.models.kind), elem_id="plan-topics-note")
        plan_table = gr.Dataframe(APP.example_plan or None, headers=PLAN_HEADERS,
                                  datatype=["number", "str", "number", "str"], type="array",
                                  interactive=True, elem_id="plan-table", show_label=False,
                                  wrap=True, column_widths=["21%", "33%", "23%", "23%"])
        rerun_btn = gr.Button("Re-run diffusion with this plan", elem_id="rerun")

    with gr.Accordion("Save or load a run", open=False):
        with gr.Row():
            trace_out = gr.File(label="Download this run (JSON trace)", interactive=False,
                                elem_id="trace-out")
            trace_in = gr.File(label="Load a saved trace to replay", file_types=[".json"],
                               elem_id="trace-in")

    with gr.Accordion("How it works", open=False):
        gr.Markdown(HOW_IT_WORKS)
        visibility = gr.Plot(show_label=False, elem_id="visibility")

    CONTROLS = {"prompt": prompt, "steps_ratio": steps_ratio, "threshold": threshold,
                "threshold_rule": threshold_rule, "unmask": unmask, "temperature": temperature,
                "top_p": top_p, "seed": seed, "length_scale": length_scale, "attention": attention,
                "use_cache": use_cache, "max_new_tokens": max_new_tokens}
    C = {**CONTROLS, "plan": plan_out, "spans": spans_out, "answer": answer, "stats": stats,
         "notices": notices, "stats_json": stats_json, "ar_lane": ar_lane, "ar_answer": ar_answer,
         "ar_stats": ar_stats, "chart": chart_out, "replay": replay, "plan_table": plan_table,
         "trace_file": trace_out, "visibility": visibility, "session": session, "facts": facts,
         "ar_facts": ar_facts, "timeline": timeline_out, "why": why_out}

    def outs(*names):
        return [C[n] for n in names]

    RUN_OUT = outs("plan", "spans", "answer", "stats", "notices", "stats_json", "ar_lane",
                   "ar_answer", "ar_stats", "chart", "session", "facts", "ar_facts")
    AFTER_OUT = [*outs("replay", "visibility", "plan_table", "trace_file", "notices", "stats",
                       "stats_json", "timeline", "why"), *CONTROLS.values()]
    VIEW_OUT = outs("plan", "spans", "answer", "notices", "stats")
    knobs = [steps_ratio, threshold, threshold_rule, unmask, temperature, top_p, seed,
             length_scale, attention, use_cache, max_new_tokens, compare, relative, session]
    model_run = dict(concurrency_id="model")  # every model run shares PDIFF_CONCURRENCY slots

    def after(ref):
        """The after-run step of one trigger: it shows the run that trigger started (`ref`)."""
        return dict(fn=called(APP.after_run, ref), inputs=[session, ref], outputs=[*AFTER_OUT, ref],
                    api_visibility="private")

    run_events = []
    for trigger, name in ((generate_btn.click, "generate"), (prompt.submit, None)):
        ref = gr.State(None)  # this trigger's run: its after-run step shows that run alone
        event = trigger(streamed(APP.generate, GPU_GENERATE, ref), [prompt, *knobs], [*RUN_OUT, ref],
                        api_name=name, api_visibility="public" if name else "private", **model_run)
        run_events += [event, event.then(**after(ref))]
    ref = gr.State(None)
    event = rerun_btn.click(streamed(APP.rerun_plan, GPU_RERUN, ref), [prompt, plan_table, *knobs],
                            [*RUN_OUT, ref], api_name="rerun_plan", **model_run)
    run_events += [event, event.then(**after(ref))]
    event = baseline_btn.click(
        streamed(APP.baseline, GPU_BASELINE),
        [prompt, temperature, top_p, seed, max_new_tokens, relative, session],
        outs("ar_lane", "ar_answer", "ar_stats", "notices", "stats_json", "chart", "session", "ar_facts"),
        api_name="baseline", **model_run)
    run_events += [event, event.then(called(APP.timeline), [session], outs("timeline", "why"),
                                     api_visibility="private")]
    run_events.append(sweep_btn.click(
        streamed(APP.sweep, GPU_SWEEP), [prompt, threshold_rule, unmask, temperature, top_p, seed,
                              length_scale, attention, use_cache, max_new_tokens, relative, session],
        outs("notices", "chart", "stats_json", "session"), api_name="sweep", **model_run))
    ref = gr.State(None)
    event = trace_in.upload(called(APP.replay_trace, ref), [trace_in, session],
                            [*VIEW_OUT, stats_json, session, facts, ref], api_name="replay_trace",
                            concurrency_id="replay")
    run_events += [event, event.then(**after(ref))]
    # Replays fold a bounded trace (pdiff.app.guard) and share their own slots, apart from runs.
    replay_slots = dict(concurrency_id="replay", concurrency_limit=SETTINGS.concurrency)
    run_events.append(play_btn.click(streamed(APP.play), [session, play_speed], [*VIEW_OUT, replay, facts],
                                     api_visibility="private", **replay_slots))
    replay.input(called(APP.replay_step), [replay, session], [*VIEW_OUT, facts], trigger_mode="always_last",
                 api_visibility="private", **replay_slots)
    stop_btn.click(None, cancels=run_events)
    relative.change(called(APP.rechart), [relative, session], [chart_out],
                    api_visibility="private", concurrency_limit=None)
    threshold_rule.change(lambda rule: gr.update(interactive=rule != "off"), [threshold_rule],
                          [threshold], api_visibility="private", queue=False)
    for button, schedule in ((default_btn, DEFAULT), (reference_btn, REFERENCE_SCHEDULE)):
        button.click(lambda s=schedule: (s["steps_ratio"], s["threshold"], s["threshold_rule"]), None,
                     [steps_ratio, threshold, threshold_rule], api_visibility="private", queue=False)

# One policy for every endpoint: through the queue, under its size and concurrency limits. The
# direct REST routes (/gradio_api/run/..., which skip the queue) are closed for every queued
# event; only the page's own instant control updates (queue=False, no model, no file) are not
# queued.
demo.queue(default_concurrency_limit=SETTINGS.concurrency, max_size=SETTINGS.queue_size,
           api_open=False)

if __name__ == "__main__":
    # SIGTERM (docker stop, a supervisor) exits through Python, so the exit clean-up runs: the
    # trace folder goes (a SIGKILLed server's is removed at the next start).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    demo.launch(server_name=SETTINGS.server_name, server_port=SETTINGS.server_port,
                css_paths=[CSS_PATH], max_file_size="25mb", footer_links=["api"],
                state_session_capacity=256)
