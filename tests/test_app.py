"""The web app: its logic (pdiff.app) unit by unit, then the page, built and served in this
process, through gradio_client."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from pdiff.app.fold import RunView, fold
from pdiff.app.frames import OUTPUTS, SKIP, Frame, error_html, stats_dict
from pdiff.app.handlers import MAX_REPLAY_FRAMES, DemoApp
from pdiff.app.inputs import PLAN_HEADERS, SWEEP_THRESHOLD, plan_rows, rows_to_plan, run_config, sweep_grid
from pdiff.app.machine import device_words
from pdiff.app.session import URGENT, Session, live_frames, quality_of
from pdiff.app.settings import (
    EXAMPLES_PATH,
    RELEASED_AR,
    RELEASED_PD,
    Models,
    SettingsError,
    check_model_name,
    load_examples,
    load_models,
    settings_from_env,
)
from pdiff.app.trace import TraceStore, read_trace, settings_for_trace, trace_to_json
from pdiff.app.view import notices_list_html
from pdiff.config import ConfigError, GenerationConfig, Knobs
from pdiff.events import Finished, Notice, PlanToken, Started
from pdiff.plan import PlanError, PlanRound
from tests import apphelpers as H

MASK = "<|mask|>"


# --- start-up settings ---------------------------------------------------------------------------


def env(**values) -> dict:
    return {k: str(v) for k, v in values.items()}


def test_settings_defaults():
    s = settings_from_env({}, cuda_available=False)
    assert (s.model, s.kind, s.device, s.dtype) == ("bundled", "bundled", "cpu", "float32")
    assert (s.max_new_tokens, s.queue_size, s.concurrency, s.sweep_limit) == (512, 16, 2, 8)
    assert (s.server_name, s.server_port, s.ar_model) == ("127.0.0.1", 7860, None)
    gpu = settings_from_env({}, cuda_available=True)
    assert (gpu.device, gpu.dtype) == ("cuda", "bfloat16")


def test_settings_released_and_folder(tiny_ckpt):
    s = settings_from_env(env(PDIFF_MODEL=RELEASED_PD[1]), cuda_available=False)
    assert s.kind == "released"
    s = settings_from_env(env(PDIFF_MODEL=tiny_ckpt, PDIFF_AR_MODEL=tiny_ckpt, PDIFF_QUEUE_SIZE=3),
                          cuda_available=False)
    assert s.kind == "folder" and s.ar_model == str(tiny_ckpt.resolve()) and s.queue_size == 3


@pytest.mark.parametrize("values, var", [
    (dict(PDIFF_MAX_NEW_TOKENS="lots"), "PDIFF_MAX_NEW_TOKENS"),
    (dict(PDIFF_MAX_NEW_TOKENS="0"), "PDIFF_MAX_NEW_TOKENS"),
    (dict(PDIFF_QUEUE_SIZE="-1"), "PDIFF_QUEUE_SIZE"),
    (dict(PDIFF_CONCURRENCY="2.5"), "PDIFF_CONCURRENCY"),
    (dict(PDIFF_SWEEP_LIMIT="1000"), "PDIFF_SWEEP_LIMIT"),
    (dict(GRADIO_SERVER_PORT="70000"), "GRADIO_SERVER_PORT"),
    (dict(GRADIO_SERVER_NAME="a b;c"), "GRADIO_SERVER_NAME"),
    (dict(PDIFF_DEVICE="tpu"), "PDIFF_DEVICE"),
    (dict(PDIFF_DEVICE="cuda"), "PDIFF_DEVICE"),  # no GPU here
    (dict(PDIFF_DTYPE="int3"), "PDIFF_DTYPE"),
    (dict(PDIFF_MODEL="someone/evil-model"), "PDIFF_MODEL"),
    (dict(PDIFF_MODEL="/no/such/folder"), "PDIFF_MODEL"),
    (dict(PDIFF_AR_MODEL="someone/other-ar"), "PDIFF_AR_MODEL"),
])
def test_settings_errors_name_the_variable(values, var):
    with pytest.raises(SettingsError, match=var):
        settings_from_env(values, cuda_available=False)


def test_allow_list_rejects_names_from_ui(tiny_ckpt):
    for name in ("bundled", *RELEASED_PD):
        assert check_model_name(name) == name
    for bad in ("gpt2", "someone/model", "../../etc", str(tiny_ckpt), "", None, 3):
        with pytest.raises(SettingsError):
            check_model_name(bad)  # UI/API input: never a folder, never an arbitrary id
    assert check_model_name(str(tiny_ckpt), allow_folder=True) == str(tiny_ckpt.resolve())


def test_bad_env_exits_with_a_clear_message(tiny_ckpt, tmp_path):
    proc = subprocess.run([sys.executable, "app.py"], cwd=H.ROOT, capture_output=True, text=True,
                          timeout=120, env={**H.app_env(tiny_ckpt, 1, tmp_path),
                                            "PDIFF_MAX_NEW_TOKENS": "many"})
    assert proc.returncode != 0
    assert "PDIFF_MAX_NEW_TOKENS must be a whole number" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_zerogpu_loads_the_models_without_graphs(monkeypatch, tiny_ckpt):
    """Under ZeroGPU (the spaces package importable) both models load eager: graphs captured at
    start-up would not be in the process each call's GPU runs in. Elsewhere the loader chooses."""
    from pdiff.app import zerogpu

    for on_zerogpu, expected in ((True, {"graphs": False}), (False, {})):
        monkeypatch.setattr(zerogpu, "available", lambda on=on_zerogpu: on)
        calls = []
        settings = settings_from_env(env(PDIFF_MODEL=tiny_ckpt, PDIFF_AR_MODEL=tiny_ckpt),
                                     cuda_available=False)
        load_models(settings, lambda name, device, dtype, calls=calls, **kw: calls.append(kw) or object())
        assert calls == [expected, expected]


def test_load_models_falls_back_to_self_as_baseline(tiny_ckpt):
    calls = []

    def loader(name, device, dtype):
        calls.append(name)
        if name == RELEASED_AR:
            raise OSError("offline")
        return object()

    settings = settings_from_env(env(PDIFF_MODEL=RELEASED_PD[0]), cuda_available=False)
    models = load_models(settings, loader)
    assert calls == [RELEASED_PD[0], RELEASED_AR] and models.ar is None
    assert "autoregressive mode" in models.baseline_note
    assert models.quality_label == "mean commit confidence"
    explicit = settings_from_env(env(PDIFF_MODEL=tiny_ckpt, PDIFF_AR_MODEL=tiny_ckpt),
                                 cuda_available=False)
    loaded = []

    def second_fails(name, device, dtype):
        loaded.append(name)
        if len(loaded) > 1:
            raise OSError("disk on fire")
        return object()
    with pytest.raises(SettingsError, match="PDIFF_AR_MODEL=.*disk on fire"):
        load_models(explicit, second_fails)  # an AR model the operator named must load


def test_examples_file():
    from pdiff.notes.checker import parse_facts
    from pdiff.notes.data import FORMS, make_split, name_split

    data = json.loads(EXAMPLES_PATH.read_text())
    for prompt in data["bundled"]["prompts"]:  # held-out notes prompts: facts, unseen names
        head = prompt.split("Facts:")[0].replace(".", " ").split()
        assert parse_facts(prompt) and any(
            w[0].isupper() and name_split(w) == "heldout" for w in head[1:]), prompt
    forms = {ex.form for ex in make_split("heldout", 200, seed=3) if ex.prompt in data["bundled"]["prompts"]}
    assert forms == set(FORMS)  # one bundled example per fact form (and one asking for a summary)
    assert any("summary" in p for p in data["bundled"]["prompts"])
    for kind, count in (("bundled", len(FORMS) + 1), ("released", 6)):
        prompts, rows = load_examples(kind)
        assert len(prompts) == count and rows_to_plan(rows, 20)


# --- knobs -> config ----------------------------------------------------------------------------


def test_config_from_inputs(engine):
    """The knobs reach the config by name, as they are: the schedule the radio names and the
    slider's threshold (which the reference schedule does not read); whole floats become ints."""
    cfg = run_config(Knobs(steps_ratio=0.5, threshold=0.8, schedule="reference", seed=3.0,
                           max_new_tokens=64.0, length_scale=None), engine, 256)
    assert (cfg.schedule, cfg.threshold) == ("reference", 0.8) and cfg.seed == 3
    assert cfg.length_scale == engine.length_scale and cfg.max_new_tokens == 64
    cfg = run_config(Knobs(threshold=0.8, schedule="adaptive"), engine, 256)
    assert (cfg.threshold, cfg.schedule) == (0.8, "adaptive")
    assert run_config(Knobs(), engine, 256).schedule == "reference"


@pytest.mark.parametrize("knobs, message", [
    (dict(schedule="off"), "schedule must be one of reference, paper, adaptive; got 'off'"),
    (dict(threshold=None), "threshold is missing"),
    (dict(max_new_tokens=300), "at most 256 on this server"),
    (dict(steps_ratio=9.0), r"steps_ratio must be in \[0.01, 4\]"),
    (dict(seed=1.5), "seed must be a whole number"),
    (dict(temperature=None), "temperature is missing"),
    (dict(attention="psychic"), "attention must be one of sparse, dense"),
    (dict(top_p="lots"), "top_p must be a number"),
    (dict(use_cache="yes"), "use_cache must be true or false"),
])
def test_config_from_inputs_errors(engine, knobs, message):
    with pytest.raises(ConfigError, match=message):
        run_config(Knobs(**knobs), engine, 256)


# --- plan editor ----------------------------------------------------------------------------------


def forced_run(engine, plan, **knobs):
    config = engine.config(plan=plan, max_new_tokens=128, **knobs)
    return list(engine.generate("Tell me about the city Velora.", config))


def test_plan_table_round_trip(engine):
    plan = (PlanRound((("intro", 1), ("facts <sync/> here", 2)), "sync"), PlanRound((("end", 1),), "end"))
    view = fold(forced_run(engine, plan))
    rows = plan_rows(view)
    assert rows == [[1, "intro", 1, ""], [1, "facts <sync/> here", 2, "sync"], [2, "end", 1, "end"]]
    assert rows_to_plan(rows, 20) == plan  # the tag in a topic stays plain text
    assert rows_to_plan({"headers": PLAN_HEADERS, "data": rows}, 20) == plan
    # blanks: empty rows skipped, missing 'ends with' defaults (last round ends, others sync)
    loose = [["2", "b", "1.0", None], [1, "a", 2, ""], ["", "", "", ""], [None] * 4]
    assert rows_to_plan(loose, 20) == (PlanRound((("a", 2),), "sync"), PlanRound((("b", 1),), "end"))
    assert rows_to_plan([[1, "x", 1, "<|im_end|>"]], 20) == (PlanRound((("x", 1),), "end"),)


@pytest.mark.parametrize("rows, message", [
    ([], "the plan table is empty"),
    ([["", "", "", ""]], "the plan table is empty"),
    ([[1, "", 1, ""]], "row 1: the topic is empty"),
    ([[1, "a", "", ""]], "row 1: give a length"),
    ([[1, "a", "two", ""]], "row 1: length units must be a whole number"),
    ([[1, "a", 1.5, ""]], "length units must be a whole number"),
    ([[1, "a", 0, ""]], r"length units must be 1..20"),
    ([[1, "a", 99, ""]], r"length units must be 1..20"),
    ([["x", "a", 1, ""]], "round must be a whole number"),
    ([[0, "a", 1, ""]], "round must be 1 or more"),
    ([[1, "a", 1, "maybe"]], "'ends with' must be sync or end"),
    ([[1, "a", 1, "sync"], [1, "b", 1, "end"]], "marked both sync and end"),
    ([[1, "a", 1, "end"], [2, "b", 1, "end"]], "round 1 ends the answer but round 2 follows"),
    ("not a table", "rows of"),
])
def test_plan_table_errors(rows, message):
    with pytest.raises(PlanError, match=message):
        rows_to_plan(rows, 20)


# --- the live loop --------------------------------------------------------------------------------


def test_live_frames_throttle_and_final_frame(engine):
    events = forced_run(engine, (PlanRound((("a", 1), ("b", 1)), "end"),))
    urgent = sum(isinstance(e, URGENT) for e in events)
    frozen = list(live_frames(iter(events), RunView(), [], 0.07, clock=lambda: 0.0))
    assert len(frozen) == 1 + urgent + 1  # the first event, the urgent ones, the final frame
    assert frozen[-1].finished is not None
    ticks = iter(range(10_000))
    every = list(live_frames(iter(events), RunView(), [], 0.07, clock=lambda: next(ticks)))
    assert len(every) == len(events)  # clock always due: one frame per event, Finished included


def test_live_frames_final_frame_without_finished_and_when_throttled():
    events = [Started("planned", (1, 2), 2)] + [PlanToken(0, 5, "x", False)] * 5
    record: list = []
    frames = list(live_frames(iter(events), RunView(), record, 10.0, clock=lambda: 0.0))
    assert len(frames) == 2 and frames[-1].count == 6 and len(record) == 6


def test_live_frames_are_live(engine):
    """Frames go out while the engine is still running: nothing is computed ahead."""
    pulled = []

    def stream():
        for ev in engine.generate("hi", engine.config(plan=(PlanRound((("a", 1),), "end"),))):
            pulled.append(ev)
            yield ev
    frames = live_frames(stream(), RunView(), [], 0.07)
    first = next(frames)
    assert first.count == 1 and len(pulled) == 1
    frames.close()


def test_sweep_grid():
    """(steps_ratio, schedule) runs: every ratio under the reference and under the picked threshold
    schedule (the paper's when the reference is picked), spread over at most `limit` runs."""
    full = sweep_grid(8, "adaptive")
    assert len(full) == 8 and len(set(full)) == 8
    assert {s for _, s in full} == {"reference", "adaptive"}
    assert {r for r, s in full if s == "reference"} == {r for r, s in full if s == "adaptive"}
    assert sweep_grid(8, "reference")[-1][1] == "paper"
    for limit in (1, 2, 3, 5, 7, 64):
        grid = sweep_grid(limit, "paper")
        assert 1 <= len(grid) <= limit and len(set(grid)) == len(grid)
    assert {s for _, s in sweep_grid(2, "paper")} == {"reference", "paper"}


def test_quality_and_stats_dict(engine):
    fin = forced_run(engine, (PlanRound((("a", 1),), "end"),))[-1]
    assert quality_of("confidence", "x", fin) == fin.stats.mean_confidence
    prompt = "Tell me about Lagil. Facts: country: Dregani."
    assert quality_of("checker", prompt, fin) == 0.0
    d = stats_dict(fin, 0.5, "q", ar_seconds=fin.stats.total_seconds * 2)
    assert d["speedup_vs_ar"] == pytest.approx(2.0) and d["text"] == fin.text


# --- the handlers, with the tiny model ----------------------------------------------------------


@pytest.fixture()
def app(engine, tmp_path):
    settings = settings_from_env(env(PDIFF_MAX_NEW_TOKENS=128, PDIFF_SWEEP_LIMIT=2),
                                 cuda_available=False)
    models = Models(engine, None, "folder", "tiny", None)
    return DemoApp(models, settings, TraceStore(tmp_path / "traces", keep=2),
                   sleep=lambda s: None)


KNOBS = dict(steps_ratio=1.0, threshold=0.9, schedule="reference", unmask="entropy",
             temperature=0.2, top_p=0.95, seed=0, length_scale=10, attention="sparse",
             use_cache=True, max_new_tokens=64)


def sweep_knobs(schedule: str, max_new_tokens: int) -> Knobs:
    """A sweep's knobs (it sets the step ratio and the threshold itself)."""
    return Knobs.named({**KNOBS, "schedule": schedule, "max_new_tokens": max_new_tokens})


def test_rerun_plan_streams_and_compares(app):
    rows = [[1, "a", 1, ""], [1, "b", 1, "end"]]
    frames = list(app.rerun_plan("Write about Velora.", rows, Knobs.named(KNOBS), compare_ar=True))
    assert len(frames) > 3 and all(set(f.changed()) <= set(OUTPUTS) for f in frames)
    assert frames[0].stats_json["status"] == "running" and frames[0].chart is SKIP
    final = frames[-1]
    s = final.stats_json
    assert s["spans"] == 2 and s["ar"]["mode"] == "autoregressive"
    assert s["forward_passes"] == s["plan_tokens"] + s["denoise_steps"] + s["prefill_forwards"]
    assert s["speedup_vs_ar"] is not None and "speedup vs AR" in final.stats
    assert "autoregressive mode" in final.notices  # no AR model: says it uses itself
    assert f"on this {device_words('cpu')} a denoise forward" in s["why"]  # the device in words
    assert MASK not in final.answer and final.ar_answer == s["ar"]["text"]
    session = final.session
    assert [p.mode for p in session.points] == ["planned", "autoregressive"]  # AR reports confidence
    out = app.after_run(session)
    n = len(session.events)
    assert out.replay == 100 and out.replay_at == f"event {n} of {n}"  # the slider at the whole run
    assert out.plan_table == [[1, "a", 1, ""], [1, "b", 1, "end"]]
    assert out.visibility is not None
    settings, events = read_trace(out.trace_file)
    assert events == session.events and settings["prompt"] == "Write about Velora."
    assert settings["plan"].startswith("<promise>")


def test_a_frame_sends_only_what_it_changes():
    """A Frame's outputs are the fields it sets (SKIP: left as they are), with a loaded trace's
    controls; `a | b` is a with b's outputs, controls and warning on top."""
    a = Frame(answer="x", stats_json={"status": "running"}, controls={"seed": 3})
    assert a.changed() == {"answer": "x", "stats_json": {"status": "running"}, "seed": 3}
    assert Frame().changed() == {} and Frame(trace_file=None).changed() == {"trace_file": None}
    b = a | Frame(stats_json={"error": "no"}, warning="no", controls={"prompt": "p"})
    assert b.changed() == {"answer": "x", "stats_json": {"error": "no"}, "seed": 3, "prompt": "p"}
    assert b.warning == "no" and (b | Frame()).warning == "no" and a.warning is None
    assert set(b.changed()) - {"seed", "prompt"} <= set(OUTPUTS)


def test_errors_are_messages(app):
    (frame,) = list(app.generate("  ", Knobs.named(KNOBS)))
    assert frame.stats_json == {"error": "the prompt is empty; type an instruction"}
    assert "pd-notice" in frame.notices and frame.warning
    (frame,) = list(app.generate("hi", Knobs.named({**KNOBS, "max_new_tokens": 500})))
    assert "at most 128" in frame.warning
    (frame,) = list(app.rerun_plan("hi", [[1, "a", "x", ""]], Knobs.named(KNOBS)))
    assert "row 1" in frame.warning
    # a plan that does not fit the budget fails inside the run: still one clear message
    frames = list(app.rerun_plan("hi", [[1, "a" * 200, 1, "end"]],
                                 Knobs.named({**KNOBS, "max_new_tokens": 8})))
    assert "max_new_tokens" in frames[-1].warning
    (frame,) = list(app.sweep("", sweep_knobs("reference", 16)))
    assert "prompt is empty" in frame.warning


def test_unexpected_failure_is_one_line(app, engine):
    class Broken:
        length_scale = engine.length_scale

        def config(self, **knobs):
            return engine.config(**knobs)

        def generate(self, prompt, config):
            yield next(iter(engine.generate(prompt, config)))  # Started, then a failure
            raise RuntimeError("device on fire")

    app.models.pd = Broken()
    frames = list(app.generate("hi", Knobs.named({**KNOBS, "max_new_tokens": 4})))
    assert "RuntimeError: device on fire" in frames[-1].warning
    assert "pd-notice" in frames[-1].notices and "error" in frames[-1].stats_json


def test_generate_stream_and_stop_closes_the_run(app, engine):
    frames = app.generate("Write about the city.", Knobs.named(KNOBS))
    first = next(frames)
    assert first.stats_json["status"] == "running"
    frames.close()  # what Stop does; the engine's generator is closed with it
    session = first.session
    assert 0 < len(session.events) and not isinstance(session.events[-1], Finished)
    done = list(app.generate("Write about the city.", Knobs.named({**KNOBS, "max_new_tokens": 16})))
    s = done[-1].stats_json
    assert s["forward_passes"] == s["plan_tokens"] + s["denoise_steps"] + s["prefill_forwards"]


def test_baseline_sweep_and_chart(app):
    session = Session()
    base = list(app.baseline("hello", Knobs(temperature=0.2, top_p=0.95, seed=0, max_new_tokens=8),
                             False, session))
    assert base[-1].stats_json["mode"] == "autoregressive"
    assert session.ar_seconds["hello"] == base[-1].stats_json["total_seconds"]
    sweep = list(app.sweep("hello", sweep_knobs("paper", 8), True, session))
    runs = sweep[-1].stats_json["runs"]
    assert len(runs) == 2 and sweep[-1].stats_json["status"] == "finished"
    assert [(r["schedule"], r["threshold"]) for r in runs] == [("reference", SWEEP_THRESHOLD),
                                                                ("paper", SWEEP_THRESHOLD)]
    assert app.rechart(True, session).chart is not None


def test_replay_and_traces(app, tmp_path):
    frames = list(app.rerun_plan("Velora", [[1, "a", 1, "end"]], Knobs.named(KNOBS)))
    session = frames[-1].session
    n = len(session.events)
    assert app.replay_step(0, session).spans == ""  # the slider is the share of the run, in percent
    assert app.replay_step(0, session).replay_at == f"event 0 of {n}"
    assert app.replay_step(100, session).answer == frames[-1].answer
    assert app.replay_step(100, session).replay_at == f"event {n} of {n}"
    assert app.replay_step(50, session).replay_at == f"event {round(n / 2)} of {n}"
    assert app.replay_step(10**9, session).answer == frames[-1].answer
    played = list(app.play(session))
    assert played[0].replay == 0 and played[-1].replay == 100
    assert all(f.replay is not SKIP for f in [*played, *app.play(Session())])  # Play reads no echo
    assert played[0].replay_at == f"event 0 of {n}" and played[-1].replay_at == f"event {n} of {n}"
    assert len(played) <= MAX_REPLAY_FRAMES + 2
    assert next(app.play(Session())).warning
    assert app.after_run(session).trace_file == app.after_run(session).trace_file  # one per run
    for _ in range(2):
        list(app.rerun_plan("Velora", [[1, "a", 1, "end"]], Knobs.named(KNOBS), session=session))
    paths = [app.after_run(session).trace_file for _ in range(3)]
    assert len(list((tmp_path / "traces").glob("*.json"))) == 2  # the store keeps the newest
    fresh = Session()
    out = app.replay_trace(paths[-1], fresh)
    assert out.answer == frames[-1].answer and fresh.events == session.events
    assert out.stats_json["status"] == "replayed"
    bad = tmp_path / "bad.json"
    for text, message in (("{", "not valid JSON"), ('{"format": "x"}', "not a pdiff trace")):
        bad.write_text(text)
        assert message in app.replay_trace(str(bad), fresh).warning
    assert "choose a trace" in app.replay_trace(None).warning


def test_notices_and_settings_helpers(engine):
    assert "boom" in error_html("boom") and "&lt;i&gt;" in error_html("<i>")
    cfg = engine.config(plan=(PlanRound((("a", 1),), "end"),))
    settings = settings_for_trace("p", cfg, "m")
    json.dumps(settings)
    assert GenerationConfig.from_dict({k: v for k, v in settings.items()
                                       if k not in ("prompt", "model")}).plan == settings["plan"]
    assert notices_list_html([Notice("x", "y")]).count("<li") == 1 and notices_list_html([]) == ""


# --- the page, built in-process -----------------------------------------------------------------


def test_importing_app_loads_nothing(monkeypatch):
    """Importing app.py reads no setting and loads no model: `python app.py` does that under
    __main__, and a test builds the page with `build_demo`."""
    import importlib

    import pdiff.app.settings as settings

    def refuse(*args, **kwargs):
        raise AssertionError("app.py loaded something at import")

    monkeypatch.setattr(settings, "settings_from_env", refuse)
    monkeypatch.setattr(settings, "load_models", refuse)
    monkeypatch.delitem(sys.modules, "app", raising=False)
    module = importlib.import_module("app")
    assert callable(module.build_demo) and not hasattr(module, "demo")


# The API as gradio_client callers know it (the names of before the endpoint table); the table
# must keep them.
API_NAMES = {
    "/generate": ["prompt", "steps_ratio", "threshold", "schedule", "unmask", "temperature", "top_p",
                  "seed", "length_scale", "attention", "use_cache", "max_new_tokens", "compare_ar",
                  "relative_view"],
    "/baseline": ["prompt", "temperature", "top_p", "seed", "max_new_tokens", "relative_view"],
    "/replay_trace": ["trace_file"],
}


def test_each_endpoint_is_served_as_its_row(app):
    """The page built in-process from a DemoApp serves each public row of the endpoint table
    under its name, with the row's inputs as parameter names (states are not parameters) and
    one return per output that is not a state; the page's own rows are not in the API; the
    names callers know stay."""
    from app import build_demo
    from pdiff.app.endpoints import ENDPOINTS

    api = build_demo(app).get_api_info()["named_endpoints"]
    states = {"session", "run"}
    for row in ENDPOINTS.values():
        served = api.get(f"/{row.name}")
        if not row.public:
            assert served is None, row.name
            continue
        assert [p["parameter_name"] for p in served["parameters"]] == [
            n for n in row.inputs if n not in states], row.name
        assert len(served["returns"]) == len([n for n in row.outputs if n not in states]), row.name
    for name, params in API_NAMES.items():
        assert [p["parameter_name"] for p in api[name]["parameters"]] == params, name
    assert set(api) == {f"/{row.name}" for row in ENDPOINTS.values() if row.public}


def test_a_control_the_visitor_edits_is_set_by_page_steps_alone():
    """No API endpoint sets a control, the plan editor or the replay slider; a page step that
    sets one reads it back (its echo), but Play, whose every frame sets the slider (test above):
    so each stays a plain value, read as the visitor left it (gradio_layer)."""
    from pdiff.app.endpoints import EDITABLE, ENDPOINTS

    for row in ENDPOINTS.values():
        edited = {n for n in row.outputs if n in EDITABLE}
        assert set(row.echo) <= edited, row.name
        if row.public:
            assert not edited, row.name
        else:
            assert edited - set(row.echo) == ({"replay"} if row.name == "play" else set()), row.name


# --- end to end: the page served in-process, through gradio_client ------------------------------
# (Stop, the queue and the server process are tested on `python app.py` in test_reliability.py.)


@pytest.fixture(scope="module")
def server(request, tmp_path_factory):
    return H.shared_page(request, tmp_path_factory)


def consistent(stats: dict) -> bool:
    return stats["forward_passes"] == (
        stats["plan_tokens"] + stats["denoise_steps"] + stats["prefill_forwards"])


def stream(job, limit: float = 60.0) -> list:
    deadline = time.monotonic() + limit
    outs = []
    for out in job:
        outs.append(out)
        assert time.monotonic() < deadline, "the run took too long"
    return outs




def test_e2e_generate_streams(client):
    job = client.submit("Tell me about the city Lagil.", 1.0, 0.9, "reference", "entropy", 0.2, 0.95,
                        0, 10, "sparse", True, 48, False, False, api_name="/generate")
    outs = stream(job)
    final = job.result()
    assert len(outs) >= 3  # several live updates before the final one
    plan, spans, answer, stats_html, notices, stats = final[:6]
    assert stats["mode"] == "planned" and consistent(stats)
    assert MASK not in answer and answer == stats["text"]
    assert "forward passes" in stats_html


def test_e2e_result_says_why(client):
    """The API's result carries the why line, its forward counts the run's own."""
    out = client.predict("Tell me about the city Lagil.", H.PLAN_TABLE, api_name="/rerun_plan",
                         max_new_tokens=96, compare_ar=True)
    stats = out[5]
    plan = stats["forward_passes"] - stats["denoise_steps"]
    assert stats["why"].startswith(f"planned: {stats['forward_passes']} forwards (plan {plan}, "
                                   f"denoise {stats['denoise_steps']}) vs AR {stats['ar']['forward_passes']}")
    assert "so per answer word it is" in stats["why"]


def test_e2e_rerun_plan_fills_spans(client):
    job = client.submit("Tell me about the city Lagil.", H.PLAN_TABLE, api_name="/rerun_plan",
                        max_new_tokens=96, steps_ratio=1.0)
    outs = stream(job)
    final = job.result()
    stats = final[5]
    assert stats["spans"] == 3 and stats["rounds"] == 2 and stats["denoise_steps"] > 0
    assert consistent(stats) and MASK not in final[2] and final[2]
    partial = [o for o in outs[:-1] if "pd-masked" in o[1]]
    assert partial, "no frame showed masked span slots being filled"
    assert final[1].count('class="pd-span"') == 3 and "pd-masked" not in final[1]


def test_e2e_errors_and_other_endpoints(client, engine, tmp_path):
    from gradio_client import handle_file

    out = client.predict("", api_name="/generate")
    assert out[5] == {"error": "the prompt is empty; type an instruction"}
    out = client.predict("hi", {"headers": PLAN_HEADERS, "data": [[1, "a", "x", ""]]},
                         api_name="/rerun_plan")
    assert "row 1" in out[5]["error"]
    base = client.predict("hello", api_name="/baseline", max_new_tokens=8)
    assert base[4]["mode"] == "autoregressive" and consistent(base[4])
    sweep = client.predict("hello", api_name="/sweep", max_new_tokens=8)
    assert sweep[2]["status"] == "finished" and len(sweep[2]["runs"]) == 2
    events = forced_run(engine, (PlanRound((("a", 1),), "end"),))
    trace = tmp_path / "run.json"
    trace.write_text(trace_to_json({"prompt": "hi"}, events))
    replay = client.predict(handle_file(str(trace)), api_name="/replay_trace")
    assert replay[2] == events[-1].text and replay[5]["status"] == "replayed"
    trace.write_text("{nope")
    assert "not valid JSON" in client.predict(handle_file(str(trace)),
                                              api_name="/replay_trace")[5]["error"]
