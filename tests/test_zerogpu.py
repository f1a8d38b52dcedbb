"""ZeroGPU: durations from settings, and behaviour with and without the `spaces` package."""

from __future__ import annotations

import sys
import types

import pytest

from pdiff.app import zerogpu
from pdiff.app.endpoints import ENDPOINTS


def test_duration_grows_with_every_setting():
    """More tokens, more steps, the AR baseline and a bigger sweep each ask for more time."""
    base = zerogpu.request_seconds(1024, 1.0)
    assert zerogpu.request_seconds(2048, 1.0) > base
    assert zerogpu.request_seconds(1024, 2.0) > base
    assert zerogpu.request_seconds(1024, 1.0, baseline=True) > base
    assert zerogpu.request_seconds(1024, 1.0, runs=4) > zerogpu.request_seconds(1024, 1.0, runs=2)


def test_duration_is_clamped():
    """Durations stay within ZeroGPU's accepted range."""
    assert zerogpu.request_seconds(1) == zerogpu.MIN_SECONDS
    assert zerogpu.request_seconds(32_768, 4.0, True, 64) == zerogpu.MAX_SECONDS


def test_without_spaces_nothing_changes(monkeypatch):
    """Without `spaces` the function is returned as it is."""
    monkeypatch.setitem(sys.modules, "spaces", None)
    monkeypatch.setattr(zerogpu, "available", lambda: False)
    fn = lambda x: x
    assert zerogpu.on_gpu(fn, lambda x: 30) is fn


def test_with_spaces_the_duration_comes_from_the_request(monkeypatch):
    """With `spaces`, the function runs under spaces.GPU with the computed duration, streaming kept."""
    seen = {}

    def GPU(duration):
        def wrap(fn):
            def run(*args):
                seen["duration"] = duration(*args)
                return fn(*args)
            return run
        return wrap

    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=GPU))
    monkeypatch.setattr(zerogpu, "available", lambda: True)

    def stream(n):
        yield from range(n)

    wrapped = zerogpu.on_gpu(stream, lambda n: zerogpu.request_seconds(n))
    assert list(wrapped(3)) == [0, 1, 2]
    assert seen["duration"] == zerogpu.request_seconds(3)


@pytest.mark.parametrize("message,fragment", [
    ("You have exceeded your GPU quota (60s requested vs. 12s left)", "quota"),
    ("GPU task aborted: duration exceeded", "more GPU time"),
])
def test_quota_and_duration_errors_become_clear_messages(message, fragment):
    """ZeroGPU failures map to one actionable line; other errors are left alone."""
    assert fragment in zerogpu.friendly_error(RuntimeError(message))
    assert zerogpu.friendly_error(ValueError("something else")) is None


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_duration_from_an_endpoints_arguments(name):
    """The duration reads max new tokens, step ratio and the baseline toggle from a call's
    arguments by the endpoint row's input names (a row without a knob: 1.0, no baseline), and
    asks for the most when they cannot be read."""
    row = ENDPOINTS[name]
    values = {"steps_ratio": 2.0, "max_new_tokens": 1024, "compare_ar": True}
    args = [values.get(n, "x") for n in row.inputs]
    expected = zerogpu.request_seconds(1024, 2.0 if "steps_ratio" in row.inputs else 1.0,
                                       "compare_ar" in row.inputs, 3)
    duration = zerogpu.duration_from(row, runs=3)
    if "max_new_tokens" in row.inputs:
        assert duration(*args) == expected
        args[row.inputs.index("max_new_tokens")] = "many"
    assert duration(*args) == zerogpu.MAX_SECONDS
