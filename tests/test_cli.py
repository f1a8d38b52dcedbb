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


@pytest.mark.parametrize("threads", [1, 2])
def test_threads_flag_sets_torch_threads(tiny_ckpt, capsys, threads):
    """`--threads N` runs the prompt on N torch threads (the default, 1, is chosen, not torch's)."""
    import torch

    from pdiff.cli import main

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        main(["--model", str(tiny_ckpt), "--prompt", "hi", "--max-new-tokens", "8", "--json",
              *(["--threads", str(threads)] if threads != 1 else [])])
        assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)
    assert '"text"' in capsys.readouterr().out


def test_threads_below_one_is_refused(tiny_ckpt, capsys):
    """`--threads 0` stops with a one-line message naming the flag, before any model loads."""
    from pdiff.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["--model", str(tiny_ckpt), "--prompt", "hi", "--threads", "0"])
    assert stop.value.code == 2 and "--threads must be at least 1" in capsys.readouterr().err


def _loaded_name(monkeypatch, argv: list[str]) -> str | None:
    """The model name `main` hands the loader (the load itself is stopped right there)."""
    import pdiff.loader
    from pdiff.cli import main

    seen = []

    def loader(name, device="cpu", dtype="float32"):
        seen.append(name)
        raise pdiff.loader.CheckpointError("stop here")

    monkeypatch.setattr(pdiff.loader, "load_engine", loader)
    with pytest.raises(SystemExit):
        main(["--prompt", "hi", *argv])
    return seen[0]


def test_autoregressive_mode_loads_the_ar_baseline_by_default(monkeypatch):
    """`--mode autoregressive` without --model runs the bundled AR checkpoint, not the planned one."""
    from pdiff.loader import BUNDLED, BUNDLED_AR

    monkeypatch.setattr("pdiff.loader.BUNDLED_AR", BUNDLED)  # any folder with a config.json
    assert _loaded_name(monkeypatch, ["--mode", "autoregressive"]) == str(BUNDLED)
    monkeypatch.setattr("pdiff.loader.BUNDLED_AR", BUNDLED_AR)
    assert _loaded_name(monkeypatch, ["--mode", "planned"]) is None  # the bundled planned model
    assert _loaded_name(monkeypatch, ["--mode", "autoregressive", "--model", "x/y"]) == "x/y"


def test_autoregressive_mode_without_a_baseline_names_the_model_flag(monkeypatch, tmp_path, capsys):
    """With no bundled AR checkpoint, `--mode autoregressive` stops with one line naming --model."""
    from pdiff.cli import main

    monkeypatch.setattr("pdiff.loader.BUNDLED_AR", tmp_path / "absent")
    with pytest.raises(SystemExit) as stop:
        main(["--prompt", "hi", "--mode", "autoregressive"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "--model" in err and "autoregressive" in err
