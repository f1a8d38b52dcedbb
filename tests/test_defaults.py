"""A checkpoint's default schedule (its measured best point, config.json "pdiff" -> "decoding")
is what the engine, the CLI and the app start from; the reference schedule is one flag away. A
"decoding" block written before `schedule` was a knob (the bundled model's) means what it meant."""

from __future__ import annotations

import json

import pytest

from pdiff.cli import config_from_args, parser
from pdiff.config import DECODING_KNOBS, ConfigError, GenerationConfig, Knobs, upgrade_schedule
from pdiff.loader import load_engine
from tests.conftest import write_tiny_checkpoint

FAST = {"steps_ratio": 0.5, "schedule": "adaptive", "threshold": 0.8}
# "decoding" blocks as written before `schedule` was a knob (threshold None was the reference, a
# threshold ran threshold_rule, the paper's by default), and the same blocks in today's spelling.
OLD_BLOCKS = [
    ({"threshold": 0.8, "threshold_rule": "adaptive", "steps_ratio": 0.5}, FAST),
    ({"steps_ratio": 0.25, "threshold": None}, {"steps_ratio": 0.25, "schedule": "reference"}),  # bundled
    ({"threshold": 0.7}, {"schedule": "paper", "threshold": 0.7}),
    ({"threshold": None, "threshold_rule": "adaptive"}, {"schedule": "reference"}),
    ({"threshold_rule": "adaptive"}, {"schedule": "reference"}),
]


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
    assert (mixed.threshold, mixed.schedule) == (0.6, "adaptive")


@pytest.mark.parametrize(("flags", "expected"), [
    (["--threshold", "0.6"], ("paper", 0.6)),  # a threshold alone asks for a schedule that reads it
    (["--schedule", "adaptive"], ("adaptive", GenerationConfig.threshold)),
    (["--schedule", "adaptive", "--threshold", "0.6"], ("adaptive", 0.6)),
    (["--schedule", "reference", "--threshold", "0.6"], ("reference", 0.6)),
])
def test_cli_schedule_flags(engine, flags, expected):
    """--schedule names the schedule and --threshold its threshold, on a checkpoint whose
    default is the reference schedule; a --threshold alone runs the paper's schedule."""
    cfg = config_from_args(parser().parse_args(["--prompt", "x", *flags]), engine)
    assert (cfg.schedule, cfg.threshold) == expected


def test_cli_refuses_the_old_rule_flag():
    """The rule is not a flag of its own any more: --threshold-rule is an unknown flag."""
    with pytest.raises(SystemExit):
        parser().parse_args(["--prompt", "x", "--threshold-rule", "adaptive"])


def test_a_checkpoint_without_defaults_runs_the_reference(engine):
    """A checkpoint with no "decoding" entry (the released 7B ones) gets the reference schedule."""
    assert engine.default_config().schedule == "reference"


@pytest.mark.parametrize(("decoding", "named"), [({"temperature": 0.5}, "temperature"),
                                                 ({"threshold": 2.0}, "threshold"),
                                                 ({"threshold_rule": "fast"}, "threshold_rule"),
                                                 ({"schedule": "off"}, "schedule"),
                                                 ({"schedule": "paper", "threshold_rule": "paper"},
                                                  "threshold_rule")])
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
    assert REFERENCE_SCHEDULE["schedule"] == "reference" and REFERENCE_SCHEDULE["steps_ratio"] == 1.0


def test_schedule_note_says_which_is_which(fast_engine, engine):
    """The page's line names the default's values (read from the checkpoint) and the reference."""
    from pdiff.app.inputs import schedule_note

    note = schedule_note(fast_engine)
    assert "adaptive threshold 0.8" in note and "step ratio 0.5" in note and "Reference" in note
    assert "default is the reference schedule" in schedule_note(engine)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """One tiny checkpoint whose "decoding" block a test rewrites just before it loads it."""
    return write_tiny_checkpoint(tmp_path_factory.mktemp("blocks") / "ckpt")


@pytest.mark.parametrize("decoding", [FAST, {}, {"steps_ratio": 0.5}, {"schedule": "paper", "threshold": 0.7},
                                      *(old for old, _ in OLD_BLOCKS)])
def test_page_defaults_are_the_default_config(decoding, folder):
    """The page's default controls (`default_schedule`), as a click's knobs, give exactly the
    engine's default_config, for every shape of a checkpoint's "decoding" entry."""
    from pdiff.app.inputs import default_schedule

    engine = load_engine(_with_decoding(folder, decoding))
    knobs = Knobs(**default_schedule(engine))
    assert knobs.config(engine.length_scale) == engine.default_config()


@pytest.mark.parametrize(("old", "new"), OLD_BLOCKS)
def test_an_old_decoding_block_means_what_it_meant(old, new, folder):
    """A "decoding" block in the old spelling loads to the defaults of the same block in today's
    spelling: the old reference (threshold None) is schedule reference, the old rule the schedule."""
    assert upgrade_schedule(old) == new
    before = load_engine(_with_decoding(folder, old)).default_config()
    assert before == load_engine(_with_decoding(folder, new)).default_config()
    assert before.schedule == new["schedule"]


def test_upgrade_leaves_todays_spelling_alone():
    """A mapping that names the schedule, or no schedule knob at all, is returned as given."""
    for values in (FAST, {}, {"steps_ratio": 0.5, "seed": 3}, {"schedule": "reference", "threshold": 0.5}):
        assert upgrade_schedule(values) == values
