"""A checkpoint's default schedule (its measured best point, config.json "pdiff" -> "decoding")
is what the engine, the CLI and the app start from; the reference schedule is one flag away."""

from __future__ import annotations

import json

import pytest

from pdiff.cli import config_from_args, parser
from pdiff.config import DECODING_KNOBS, ConfigError, GenerationConfig, Knobs, schedule_knobs
from pdiff.loader import load_engine
from tests.conftest import write_tiny_checkpoint

FAST = {"threshold": 0.8, "threshold_rule": "adaptive", "steps_ratio": 0.5}


def _with_decoding(folder, decoding):
    path = folder / "config.json"
    config = json.loads(path.read_text())
    config["pdiff"] = {**config.get("pdiff", {}), "decoding": decoding}
    path.write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="module")
def fast_engine(tmp_path_factory):
    folder = write_tiny_checkpoint(tmp_path_factory.mktemp("fast") / "ckpt")
    return load_engine(_with_decoding(folder, FAST))


def test_default_config_starts_from_the_checkpoint_defaults(fast_engine):
    """engine.default_config() carries the checkpoint's schedule knobs; a given knob wins."""
    cfg = fast_engine.default_config()
    assert {k: getattr(cfg, k) for k in DECODING_KNOBS} == FAST
    assert fast_engine.default_config(threshold=0.95).threshold == 0.95


def test_config_is_the_reference_schedule(fast_engine):
    """engine.config() ignores the checkpoint's defaults: the GenerationConfig defaults remain,
    so a benchmark setting runs exactly as named."""
    cfg = fast_engine.config()
    plain = GenerationConfig()
    assert {k: getattr(cfg, k) for k in DECODING_KNOBS} == {k: getattr(plain, k) for k in DECODING_KNOBS}
    assert cfg.schedule == "reference"


def test_cli_defaults_are_the_checkpoint_defaults(fast_engine):
    """`python -m pdiff generate` with no schedule flag uses the checkpoint's defaults, and
    `--reference` the reference schedule, as engine.default_config and engine.config do."""
    cfg = config_from_args(parser().parse_args(["--prompt", "x"]), fast_engine)
    assert cfg == fast_engine.default_config()
    ref = config_from_args(parser().parse_args(["--prompt", "x", "--reference"]), fast_engine)
    assert ref == fast_engine.config()
    mixed = config_from_args(parser().parse_args(["--prompt", "x", "--threshold", "0.6"]), fast_engine)
    assert (mixed.threshold, mixed.threshold_rule) == (0.6, "adaptive")


def test_a_checkpoint_without_defaults_runs_the_reference(engine):
    """A checkpoint with no "decoding" entry (the released 7B ones) gets the reference schedule."""
    assert engine.default_config().schedule == "reference"


@pytest.mark.parametrize(("decoding", "named"), [({"temperature": 0.5}, "temperature"),
                                                 ({"threshold": 2.0}, "threshold"),
                                                 ({"threshold_rule": "fast"}, "threshold_rule")])
def test_bad_defaults_are_refused_at_load(tmp_path, decoding, named):
    """Unknown or out-of-range default knobs stop the load with a message that names them."""
    folder = _with_decoding(write_tiny_checkpoint(tmp_path / "ckpt"), decoding)
    with pytest.raises(ConfigError, match=named):
        load_engine(folder)


def test_page_starts_at_the_checkpoint_default(fast_engine, engine):
    """The app's controls start at the checkpoint's default schedule; a checkpoint without one
    starts at the reference schedule, which the page always offers."""
    from pdiff.app.inputs import REFERENCE_SCHEDULE, default_schedule

    assert default_schedule(fast_engine) == FAST
    assert default_schedule(engine) == REFERENCE_SCHEDULE
    assert REFERENCE_SCHEDULE["threshold_rule"] == "off" and REFERENCE_SCHEDULE["steps_ratio"] == 1.0


def test_schedule_note_says_which_is_which(fast_engine, engine):
    """The page's line names the default's values (read from the checkpoint) and the reference."""
    from pdiff.app.inputs import schedule_note

    note = schedule_note(fast_engine)
    assert "adaptive threshold 0.8" in note and "step ratio 0.5" in note and "Reference" in note
    assert "default is the reference schedule" in schedule_note(engine)


@pytest.mark.parametrize("decoding", [FAST, {}, {"steps_ratio": 0.5}, {"threshold": 0.7}])
def test_schedule_knobs_are_the_default_config(decoding, tmp_path):
    """The page's and the CLI's default knobs (`schedule_knobs`) give exactly the engine's
    default_config, for every shape of a checkpoint's "decoding" entry."""
    engine = load_engine(_with_decoding(write_tiny_checkpoint(tmp_path / "ckpt"), decoding))
    knobs = Knobs(**schedule_knobs(engine.decoding))
    assert knobs.config(engine.length_scale) == engine.default_config()
