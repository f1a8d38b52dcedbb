"""A visitor's own runs in a real browser, on the bundled models: Stop, the marks of a broken
answer, the notice of a question, the speed line, the chart's fronts, the threshold under the
reference schedule, and Play's speeds (timed from step 0).

Served and skipped as tests/test_browser.py is; screenshots go to test-artifacts/visit-*.png.
"""

from __future__ import annotations

import contextlib
import re

import pytest

from pdiff.app.fold import STOPPED
from pdiff.app.handlers import MAX_REPLAY_FRAMES
from pdiff.app.playback import play_schedule
from tests import apphelpers as H
from tests import test_browser as B
from tests.test_browser import artifacts, expected_marks, marks_on_page, open_page, settle, wait_until

browser, server = B.browser, B.server  # the browser and the tiny model's page, as test_browser has them

pytestmark = pytest.mark.browser

# Written for these tests, in the page's notes format but with values off the model's lists.
BROKEN = "Tell me about the city Lagil. Facts: country: Dregani; climate: foggy; population: 1620."
QUESTION = "What is the capital of France? Answer in one sentence."
OTHER = "Describe an animal called the Plumbit. Facts: habitat: marshes; diet: insects; lifespan: 12 years."


@pytest.fixture(scope="module")
def bundled_server(tmp_path_factory):
    server = H.serve_page("bundled", tmp_path_factory.mktemp("visits"))
    yield server
    server.stop()


@contextlib.contextmanager
def visit(browser, server):
    """A page of `server` in a desktop window; no console or page error, closed after."""
    page, problems = open_page(browser, server, 1280, 900)
    try:
        yield page
        assert not problems, "\n".join(problems)
    finally:
        page.close()


def generate(page, prompt: str, compare: bool = True) -> None:
    """Type `prompt`, Generate, and wait for the run (and its AR baseline) to finish: its stats
    (and the baseline's) filled anew, and every step after it ended. The stats compared are the
    panel's own content: the panel's markup also holds gradio's status tracker, which changes
    as soon as the run is queued, so the old stats looked new before the run had begun."""
    settle(page)
    page.fill("#prompt textarea", prompt)
    page.set_checked("#compare input[type=checkbox]", compare)
    panels = [f"{p} .pd-stats:not(.pd-empty)" for p in ("#stats", *(["#ar-stats"] if compare else []))]
    before = {p: page.locator(p).inner_html() if page.locator(p).count() else "" for p in panels}
    page.click("#generate")
    for p in panels:
        wait_until(lambda p=p: page.locator(p).count() > 0 and page.locator(p).inner_html() != before[p],
                   f"{p} filled")
    settle(page)


def errors_shown(page) -> int:
    """Gradio's red "Error" badges on the page's outputs."""
    return page.locator(".error").count() + page.locator("text=Error").count()


def test_stop_shows_what_the_run_had_with_one_set_of_counts(browser, bundled_server):
    with visit(browser, bundled_server) as page:
        assert not page.locator("#timeline").is_visible()  # no run yet
        page.click("#schedule_reference")  # one token per span per step: a run long enough to stop
        page.check("#compare input[type=checkbox]")
        page.click("#generate")
        step = re.compile(r"step (\d+)/(\d+)")
        wait_until(lambda: (m := step.search(page.locator("#span-lanes").inner_text())) and int(m[1]) >= 2,
                   "the spans' second denoise step")
        page.click("#stop")
        wait_until(lambda: "stopped" in page.locator("#notices").inner_text(), "the stopped notice")
        page.wait_for_timeout(1500)  # past the Stop's own cancel of what still waits
        assert errors_shown(page) == 0
        notices = page.locator("#notices").inner_text()
        answer = page.locator("#answer textarea").input_value()
        if answer.startswith(STOPPED):  # stopped while the spans denoised
            said = re.search(r"denoise step (\d+) of (\d+)", notices)
            cards = step.search(page.locator("#span-lanes").inner_text())
            assert said and cards and said.groups() == cards.groups(), (notices, cards)
            assert "stopped" in page.locator("#stats").inner_text()
            assert not page.locator("#timeline").is_visible()  # no figure: no empty plot's box
        else:  # the planned run had finished: the AR baseline was stopped
            assert page.locator("#ar-answer textarea").input_value().startswith(STOPPED)
            assert "the AR baseline stopped after" in notices
        page.screenshot(path=str(artifacts() / "visit-stop.png"), full_page=True)
        # the page goes on: the next run finishes as usual
        page.click("#generate")
        wait_until(lambda: not page.locator("#answer textarea").input_value().startswith(STOPPED)
                   and page.locator("#answer textarea").input_value(), "the next answer")
        page.wait_for_selector("#timeline .js-plotly-plot", state="visible", timeout=B.TIMEOUT_MS)


def test_a_broken_answer_is_marked_and_said_to_be_the_whole_run(browser, bundled_server):
    with visit(browser, bundled_server) as page:
        generate(page, BROKEN)
        for box, lane in (("#facts", "#answer"), ("#ar-facts", "#ar-answer")):
            text = page.locator(f"{lane} textarea").input_value()
            assert marks_on_page(page, box) == expected_marks(BROKEN, text)
        card = page.locator("#span-lanes .pd-conf").first
        assert "model confidence" in card.inner_text() and "not a correctness check" in card.inner_text()
        wait_until(lambda: "per answer word" in page.locator("#why").inner_text(), "the why line")
        why = page.locator("#why").inner_text()
        assert why.index("whole run") < why.index("per answer word") and "not the replay step" in why
        title = page.evaluate("document.querySelector('#timeline .js-plotly-plot').layout.xaxis.title.text")
        assert "whole run" in title
        page.screenshot(path=str(artifacts() / "visit-marks.png"), full_page=True)
        generate(page, QUESTION, compare=False)
        notices = page.locator("#notices").inner_text()
        assert "likely invented" in notices and "no facts could be read" in notices
        assert page.locator("#facts .pd-fact").count() == 0
        page.screenshot(path=str(artifacts() / "visit-question.png"), full_page=True)


def test_the_threshold_says_when_it_does_not_apply(browser, bundled_server):
    with visit(browser, bundled_server) as page:
        label = lambda: page.locator("#threshold").inner_text()  # noqa: E731
        page.click("#schedule_reference")
        wait_until(lambda: "not used" in label(), "the threshold's not-used label")
        assert page.locator("#threshold input[type=range]").is_disabled()
        page.locator("#threshold").screenshot(path=str(artifacts() / "visit-threshold.png"))
        page.locator("#schedule label", has_text="adaptive").click()
        wait_until(lambda: "not used" not in label(), "the threshold's own label")
        assert page.locator("#threshold input[type=range]").is_enabled()


def test_each_prompt_has_its_own_front(browser, server):
    """Two prompts, each run at four settings: every dashed front holds one prompt's
    non-dominated runs (faster, or better) and each prompt with two has its front, as read off
    the chart's own points. On the tiny random model, whose quality (mean confidence) differs
    from run to run; the bundled models' fact scores tie on a prompt (one run dominates), so
    whether a prompt has a front depends on the timings: tests/test_chart.py has the fronts of
    fixed points."""
    with visit(browser, server) as page:
        for prompt in (BROKEN, OTHER):
            generate(page, prompt)
            page.click("#sweep")
            wait_until(lambda: "done:" in page.locator("#notices").inner_text(), "the sweep", limit=90)
        traces = page.evaluate("document.querySelector('#chart .js-plotly-plot').data"
                               ".map(t => ({mode: t.mode, name: t.name, x: t.x, y: t.y, text: t.text}))")
        runs = {}  # prompt's short form -> its runs' (latency, quality)
        for t in (t for t in traces if t["mode"] == "markers"):
            for x, y, text in zip(t["x"], t["y"], t["text"], strict=True):
                runs.setdefault(text.split("<br>")[2], set()).add((x, y))
        assert len(runs) == 2
        expected = {}
        for short, xy in runs.items():
            best = {(x, y) for x, y in xy if not any(a <= x and b >= y and (a, b) != (x, y) for a, b in xy)}
            if len(best) >= 2:
                expected[f"front: {short}"] = best
        drawn = {t["name"]: set(zip(t["x"], t["y"], strict=True)) for t in traces if t["mode"] == "lines"}
        assert drawn == expected, (drawn, runs)
        print(f"\nFRONTS drawn: {len(drawn)} of {len(runs)} prompts")
        page.locator("#chart").screenshot(path=str(artifacts() / "visit-chart.png"))


# Logs (time, k, n) each time the line beside the replay slider ("event k of n") changes. A
# MutationObserver sees every update the page applies; polling once an animation frame missed the
# first frame on a loaded machine, when two updates landed within one frame.
WATCH_REPLAY = """() => {
  window.__replay = [];
  const line = document.querySelector('#replay-step');
  const look = () => {
    const m = /event (\\d+) of (\\d+)/.exec(line.innerText), log = window.__replay;
    if (m && (!log.length || log[log.length - 1][1] !== +m[1]))
      log.push([performance.now() / 1000, +m[1], +m[2]]);
  };
  window.__replayWatch?.disconnect();
  window.__replayWatch = new MutationObserver(look);
  window.__replayWatch.observe(line, {subtree: true, childList: true, characterData: true});
}"""


def play_seconds(page, speed: float) -> float:
    """Seconds from the replay's start to its last event at `speed` (the slider from 0 to
    100 %), as the page showed them. The server sends frame i at i pauses after its start; the
    page draws it then or later (a loaded machine applies updates late, several at once), so each
    drawn frame's time less its due time is the start or after it, and the start is the least."""
    page.get_by_test_id(f"{speed:g}×-radio-label").click()
    page.evaluate(WATCH_REPLAY)
    page.click("#play")
    log = lambda: page.evaluate("window.__replay")  # noqa: E731
    # the play has begun (a frame before the end) and drawn its end
    wait_until(lambda: any(k < n for _, k, n in log()) and log()[-1][1] == log()[-1][2], "the last step",
               limit=120)
    steps = log()
    assert page.locator("#replay input[type=number]").input_value() == "100"  # the slider's end
    first = next(i for i, (_, k, n) in enumerate(steps) if k < n)
    n = steps[first][2]
    frames, pause = play_schedule(n, speed, MAX_REPLAY_FRAMES)
    end = next(i for i in range(first, len(steps)) if steps[i][1] == n)
    start = min(t - frames.index(k) * pause for t, k, _ in steps[first:end])
    return steps[end][0] - start


def test_play_speeds_set_the_pace(browser, bundled_server):
    with visit(browser, bundled_server) as page:
        generate(page, OTHER, compare=False)
        wait_until(lambda: page.locator("#replay-step").inner_text().startswith("event"), "the replay")
        n = int(page.locator("#replay-step").inner_text().split()[-1])  # "event n of n": the run's events
        took = {speed: play_seconds(page, speed) for speed in (1.0, 0.25)}
        nominal = {s: (len(f) - 1) * pause for s, (f, pause) in
                   ((s, play_schedule(n, s, MAX_REPLAY_FRAMES)) for s in took)}
        print(f"\nPLAY {n} events: 1x {took[1.0]:.2f} s (due {nominal[1.0]:.2f}), "
              f"0.25x {took[0.25]:.2f} s (due {nominal[0.25]:.2f})")
        assert took[0.25] >= 0.8 * nominal[0.25]  # the slow speed is not rushed
        assert took[0.25] / took[1.0] >= 2.5  # and the speeds differ (4x, less the page's own time)
