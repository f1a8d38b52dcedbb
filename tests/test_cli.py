"""`python -m pdiff generate` output: colour only on a terminal, never with NO_COLOR."""

from __future__ import annotations

import io

import pytest

from pdiff.cli import ANSI, stream


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _run(engine, out) -> str:
    stream(engine.generate("Tell me about Velora.", engine.config(temperature=0.0, max_new_tokens=40)), out)
    return out.getvalue()


def test_piped_output_has_no_escape_codes(engine, monkeypatch):
    """Output to a pipe or file is plain text: no ANSI escape at all."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    text = _run(engine, io.StringIO())
    assert "\033" not in text and "answer" in text


def test_terminal_output_is_coloured(engine, monkeypatch):
    """On a terminal the answer heading is bold (the check above can fail)."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert ANSI["bold"] + "answer" in _run(engine, Terminal())


@pytest.mark.parametrize("value", ["1", "true"])
def test_no_color_turns_colour_off_on_a_terminal(engine, monkeypatch, value):
    """NO_COLOR set to anything non-empty: no colour codes even on a terminal."""
    monkeypatch.setenv("NO_COLOR", value)
    text = _run(engine, Terminal())
    assert not any(code in text for code in ANSI.values())
