"""Issue 15 in a real browser: every button in a fresh session, Stop's feedback, and a loaded
trace restoring its prompt and settings. Skipped cleanly without chromium or playwright; any
console or page error fails the test (tests/test_browser.py's helpers)."""

from __future__ import annotations

import json

import pytest

from tests.test_browser import TIMEOUT_MS, browser, open_page, server  # noqa: F401 - fixtures
from tests.test_hostile import LONG, real_trace  # noqa: F401 - fixture

pytestmark = pytest.mark.browser

STOP_ON_FIRST_TOKEN = """() => {
  const watch = new MutationObserver(() => {
    if (document.querySelector('#plan-lane .pd-ptok')) {
      watch.disconnect();
      document.querySelector('#stop').click();
    }
  });
  watch.observe(document.body, {subtree: true, childList: true});
}"""


def test_fresh_session_buttons_stop_feedback_and_trace_restore(browser, server, real_trace, tmp_path):  # noqa: F811
    """In a fresh page: Play says there is nothing to replay yet; a Generate stopped mid-run
    says where it stopped ("stopped at denoise step k of n", or in the plan) with its partial
    stats; a loaded trace puts its own prompt and seed into the controls; no console error."""
    page, problems = open_page(browser, server, 1280, 900)
    try:
        assert page.locator("#replay-step").inner_text().strip() == "no run to replay yet"
        page.click("#play")
        page.wait_for_selector("#notices :text('nothing to replay yet')", timeout=TIMEOUT_MS)
        page.fill("#prompt textarea", LONG * 3)
        # Stop is clicked from the page itself the moment the first plan token shows: the tiny
        # model's whole run can take less time than a round trip from the test.
        page.evaluate(STOP_ON_FIRST_TOKEN)
        # Stop's first call (no queue) sets the session's flag; the run ends at its next event
        with page.expect_request(lambda r: r.method == "POST" and "/gradio_api/run/" in r.url,
                                 timeout=TIMEOUT_MS):
            page.click("#generate")
        page.wait_for_function("() => /stopped (at denoise step \\d+ of \\d+|while planning|before)/"
                               ".test(document.querySelector('#notices').innerText)", timeout=TIMEOUT_MS)
        assert "events" in page.locator("#stats").inner_text()
        trace = json.loads(json.dumps(real_trace))
        trace["settings"]["seed"] = 7
        path = tmp_path / "trace.json"
        path.write_text(json.dumps(trace))
        page.fill("#prompt textarea", "another prompt")
        page.get_by_text("Save or load a run").click()
        page.locator("#trace-in input[type=file]").set_input_files(str(path))
        restored = f"() => document.querySelector('#prompt textarea').value === {json.dumps(LONG)}"
        page.wait_for_function(restored, timeout=TIMEOUT_MS)
        assert not problems, "\n".join(problems)
    finally:
        page.close()
