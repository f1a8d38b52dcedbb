"""A visitor's session on the server does not grow with each run: every control of the page,
used in a real browser, twice over, leaves the session holding as many components as before.

gradio 6.31 keeps a fresh copy of an output in the session each time the output gets a prop
update (a skip among them) and then a plain value, or is read as an input (blocks.py:2337,
2353, 2145). The page keeps every output either always plain or always an update
(`gradio_layer`), so no round adds one. Served and skipped as tests/test_browser.py is.
"""

from __future__ import annotations

from collections import Counter

import pytest

from tests import test_browser as B
from tests.test_browser import IDLE, PROMPT, TIMEOUT_MS, open_page, settle, wait_until

browser, server = B.browser, B.server  # the browser and the tiny model's page

pytestmark = pytest.mark.browser


def _components(server, keys: set) -> Counter:
    """The components held by the sessions of `keys`, by class name."""
    data = server.demo.state_holder.session_data
    return Counter(type(b).__name__ for k in keys if k in data for b in data[k].blocks_config.blocks.values())


def _idle(page) -> None:
    """No event of the page pending for 0.2 s: between a run and its after-run step the page is
    idle for a moment, and a click then is dropped (the button's event is still on)."""
    quiet = 0
    while quiet < 2:
        settle(page)
        page.wait_for_timeout(100)
        quiet = quiet + 1 if page.evaluate(IDLE) else 0


def _click_and_settle(page, selector: str) -> None:
    page.click(selector)
    page.wait_for_timeout(100)  # the click's event is queued before the page is idle again
    _idle(page)


def _one_round(page, folder) -> None:
    """Every control once: Generate (alone, with the AR baseline, refused), re-run the plan,
    the baseline, a sweep, the schedule radio and buttons, the relative view, the replay slider,
    Play, and the run's trace downloaded and loaded again."""
    page.fill("#prompt textarea", PROMPT)
    _click_and_settle(page, "#generate")
    page.check("#compare input[type=checkbox]")
    _click_and_settle(page, "#generate")
    page.uncheck("#compare input[type=checkbox]")
    page.fill("#prompt textarea", "   ")
    _click_and_settle(page, "#generate")  # refused: the prompt is empty
    wait_until(lambda: "prompt is empty" in page.locator("#notices").inner_text(), "the refusal")
    page.fill("#prompt textarea", PROMPT)
    _click_and_settle(page, "#rerun")
    _click_and_settle(page, "#baseline")
    _click_and_settle(page, "#sweep")
    page.get_by_label("paper").check()
    page.get_by_label("reference").check()
    _click_and_settle(page, "#schedule_default")
    _click_and_settle(page, "#schedule_reference")
    page.check("#relative input[type=checkbox]")
    _idle(page)
    page.uncheck("#relative input[type=checkbox]")
    _idle(page)
    page.locator("#replay input[type=range]").fill("40")
    _idle(page)
    page.locator("#play-speed label", has_text="4×").click()  # the fastest: the run in ~2.5 s
    page.click("#play")
    wait_until(lambda: _at_the_end(page.locator("#replay-step").inner_text()), "Play to end")
    _idle(page)
    if not page.locator("#trace-in").is_visible():
        page.get_by_text("Save or load a run").click()
    with page.expect_download(timeout=TIMEOUT_MS) as download:
        page.click("#trace-out a")
    page.fill("#prompt textarea", "another prompt")
    trace = folder / "run.json"
    download.value.save_as(trace)
    clear = page.locator("#trace-in button[aria-label='Clear']")
    if clear.count():  # the last round's upload is still shown there
        clear.first.click()
    page.locator("#trace-in input[type=file]").set_input_files(str(trace))
    wait_until(lambda: page.locator("#prompt textarea").input_value() == PROMPT, "the trace's prompt back")
    _idle(page)


def _at_the_end(line: str) -> bool:
    words = line.split()  # "event k of n"
    return len(words) == 4 and words[1] == words[3]


def test_a_session_does_not_grow_with_each_run(browser, server, tmp_path):
    before = set(server.demo.state_holder.session_data)
    page, problems = open_page(browser, server, 1280, 900)
    try:
        sizes = []
        for _ in range(2):
            _one_round(page, tmp_path)
            sizes.append(_components(server, set(server.demo.state_holder.session_data) - before))
        print(f"\nBROWSER session components after each of 2 rounds: {[sum(s.values()) for s in sizes]}")
        assert sum(sizes[0].values()) > 0
        assert sizes[1] == sizes[0], f"grew in round 2 by {sizes[1] - sizes[0]}"
        assert not problems, "\n".join(problems)
    finally:
        page.close()
