"""The bound on one request's denoise work (pdiff.app.work): a plan whose spans would cost more
than work_cap (WORK_PER_TOKEN x max_new_tokens, at least x the default budget) block-token steps
is refused before it is denoised."""

from __future__ import annotations

import pytest

from pdiff.app.handlers import DemoApp
from pdiff.app.inputs import DEFAULT_MAX_NEW_TOKENS
from pdiff.app.session import Session
from pdiff.app.settings import Models, settings_from_env
from pdiff.app.trace import TraceStore
from pdiff.app.work import WORK_PER_TOKEN, WorkError, bounded, round_work, work_cap
from pdiff.config import Knobs
from pdiff.events import DenoiseStep, Finished, PlanItem, SpansOpened

LONG = "Tell me about the city Lagil. Facts: country: Dregani; climate: hot."
KNOBS = {"steps_ratio": 1.0, "threshold": 0.9, "schedule": "reference", "unmask": "entropy",
         "temperature": 0.2, "top_p": 0.95, "seed": 0, "length_scale": 2, "attention": "sparse",
         "use_cache": True, "max_new_tokens": 256, "compare_ar": False, "relative_view": False}
ONE_SPAN = [[1, "intro", 1, "end"]]


def _opened(lengths, steps, rnd=0) -> SpansOpened:
    items = tuple(PlanItem(f"t{i}", 1, n) for i, n in enumerate(lengths))
    return SpansOpened(rnd, items, "end", steps)


def test_a_rounds_work_is_its_steps_times_its_blocks():
    """Work = steps x (each span plus its two tags); the paper rule may run to the longest span."""
    assert round_work(_opened([10, 30], steps=15)) == 15 * (12 + 32)
    assert round_work(_opened([10, 30], steps=15), paper=True) == 30 * (12 + 32)


def test_a_run_under_the_cap_passes_unchanged():
    """Events of a run within the cap come through as they are, in order."""
    events = [_opened([20], steps=20), "step", _opened([20], steps=20, rnd=1), "end"]
    assert 2 * 20 * 22 <= work_cap(64)
    assert list(bounded(iter(events), 64)) == events


def test_the_round_that_crosses_the_cap_is_refused_before_it_opens():
    """The rounds' work adds up; the SpansOpened that takes it past the cap is not passed on,
    the message says what to lower, and the engine's stream is closed."""
    closed = []

    def source():
        try:
            yield _opened([20], steps=20)
            yield _opened([150], steps=150, rnd=1)  # 20 x 22 + 150 x 152 > work_cap(64)
            yield "never"
        finally:
            closed.append(True)

    passed = []
    with pytest.raises(WorkError, match="lower the length scale or the step ratio") as err:
        passed.extend(bounded(source(), 64))
    assert passed == [_opened([20], steps=20)]
    assert "round 2" in str(err.value) and "\n" not in str(err.value)
    assert closed == [True]


def test_a_lower_budget_keeps_the_default_budgets_allowance():
    """Lowering max_new_tokens never shrinks the cap below the default budget's: a normal plan
    at 160 tokens (4 spans, the longest 44, 44 steps) runs; above the default the cap grows."""
    assert work_cap(64) == work_cap(160) == WORK_PER_TOKEN * DEFAULT_MAX_NEW_TOKENS
    assert round_work(_opened([44, 40, 30, 20], steps=44)) <= work_cap(160)
    assert work_cap(2 * DEFAULT_MAX_NEW_TOKENS) == 2 * work_cap(DEFAULT_MAX_NEW_TOKENS)


@pytest.fixture()
def app(engine, tiny_ckpt, tmp_path):
    settings = settings_from_env({"PDIFF_MAX_NEW_TOKENS": "256"}, cuda_available=False)
    models = Models(engine, None, "folder", str(tiny_ckpt), None)
    return DemoApp(models, settings, TraceStore(tmp_path / "traces"), sleep=lambda s: None)


def test_the_largest_length_scale_is_refused_before_any_denoise_step(app):
    """Length scale 200 (the slider's top) at step ratio 1 makes one span of the whole budget:
    the run is refused with one line naming the work and the cap, and no denoise step ran."""
    session = Session()
    frames = list(app.rerun_plan(LONG, ONE_SPAN, Knobs.named({**KNOBS, "length_scale": 200}),
                                 session=session))
    message = frames[-1].warning
    assert f"over the {work_cap(256):,} one request may use" in message
    record = session.current
    assert record.failed
    assert not any(isinstance(ev, (DenoiseStep, Finished)) for ev in record.events)


def test_the_same_plan_at_a_normal_length_scale_runs(app):
    """The bound does not touch an ordinary run: the same plan at length scale 2 finishes."""
    session = Session()
    frames = list(app.rerun_plan(LONG, ONE_SPAN, Knobs.named(KNOBS), session=session))
    assert frames[-1].warning is None
    assert isinstance(session.current.events[-1], Finished)
