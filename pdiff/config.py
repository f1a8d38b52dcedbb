"""Generation settings: one frozen, validated dataclass, and the knobs a person sets.

Every knob of the engine lives in `GenerationConfig` with its default and its limits. `Knobs` is
the same knobs, by the same names, as they arrive from a person (CLI flags, API arguments,
sliders), and `Knobs.config` is the one mapping from them to a GenerationConfig; the CLI and the app both use
it. Errors name the bad value, so the CLI and the app can show them as they are. The commit
schedule is one knob, `schedule`, in every layer; `upgrade_schedule` reads the spelling that
came before it (checkpoint configs and traces written then). This module knows nothing about
models, pages or terminals.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

MODES = ("planned", "autoregressive", "diffusion")
# The names of sampling.SCHEDULES (spec section 4): reference, the paper's schedule with no
# threshold; paper, a confidence threshold that only adds steps; adaptive, one that removes steps.
SCHEDULES = ("reference", "paper", "adaptive")
UNMASK_SCORES = ("entropy", "confidence", "margin")
ATTENTIONS = ("sparse", "dense")

# (low, high) inclusive limits of each numeric knob; the app's sliders read them from here.
LIMITS: dict[str, tuple[float, float]] = {
    "steps_ratio": (0.01, 4.0),
    "threshold": (0.0, 1.0),
    "temperature": (0.0, 5.0),
    "top_p": (0.01, 1.0),
    "top_k": (0, 1_000_000),
    "seed": (0, 2**63 - 1),
    "length_scale": (1, 200),
    "max_new_tokens": (1, 32_768),
    "max_plan_tokens": (1, 4_096),
    "max_rounds": (1, 64),
    "max_span_units": (1, 1_000),
}


# The schedule knobs a checkpoint may set defaults for (its measured best point, in config.json
# under "pdiff" -> "decoding"); the reference schedule is these knobs' defaults below.
DECODING_KNOBS = ("steps_ratio", "schedule", "threshold")


def _page(default, ar: bool = False):
    """A knob the page's controls set (`ar`: the AR baseline reads it too)."""
    return field(default=default, metadata={"page": True, "ar": ar})


class ConfigError(ValueError):
    """A setting is out of range or of the wrong kind; the message names it and its value."""


@dataclass(frozen=True)
class GenerationConfig:
    mode: str = "planned"  # planned | autoregressive | diffusion (the two baselines)
    steps_ratio: float = _page(1.0)  # denoise steps = int(longest span * steps_ratio), at least 1
    threshold: float = _page(0.9)  # confidence threshold of paper and adaptive; the reference ignores it
    schedule: str = _page("reference")  # reference | paper (threshold adds steps) | adaptive (removes them)
    unmask: str = _page("entropy")  # score that ranks masked positions: entropy | confidence | margin
    temperature: float = _page(0.2, ar=True)  # 0 is greedy; the released demo uses 0.2
    top_p: float = _page(0.95, ar=True)  # nucleus sampling mass; 1.0 turns it off
    top_k: int = 0  # 0 turns it off
    seed: int = _page(0, ar=True)  # seeds the one torch.Generator of a run
    length_scale: int = _page(10)  # tokens per plan length unit; the released models were trained with 10
    attention: str = _page("sparse")  # sparse: spans do not see each other; dense: spans of a round do
    use_cache: bool = _page(True)  # exact KV cache of the prefix (spec section 5)
    max_new_tokens: int = _page(512, ar=True)  # bound on everything after the prompt: plan, tags and spans
    max_plan_tokens: int = 128  # cap on the plan tokens of one round (runaway plans stop here)
    max_rounds: int = 8  # cap on <sync/> rounds
    max_span_units: int = 20  # a plan item's N is clamped to this many units
    plan: str | tuple | None = None  # user plan rounds (markup or PlanRounds), used verbatim
    chat_template: bool = True  # wrap the prompt in the checkpoint's chat template

    def __post_init__(self) -> None:
        for name, allowed in (
            ("mode", MODES),
            ("schedule", SCHEDULES),
            ("unmask", UNMASK_SCORES),
            ("attention", ATTENTIONS),
        ):
            value = getattr(self, name)
            if value not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
        for name, (low, high) in LIMITS.items():
            value = getattr(self, name)
            integral = _FIELDS[name].type == "int"
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{name} must be a number; got {value!r}")
            if integral and not float(value).is_integer():
                raise ConfigError(f"{name} must be a whole number; got {value!r}")
            if not math.isfinite(value) or not low <= value <= high:
                raise ConfigError(f"{name} must be in [{low:g}, {high:g}]; got {value!r}")
        for name in ("use_cache", "chat_template"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false; got {getattr(self, name)!r}")
        if self.plan is not None and not isinstance(self.plan, (str, tuple)):
            raise ConfigError(f"plan must be text or a tuple of PlanRound; got {type(self.plan).__name__}")

    @classmethod
    def from_dict(cls, values: dict) -> GenerationConfig:
        """Build from loose input (API, JSON trace), refusing unknown keys by name."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(unknown)}")
        return cls(**values)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


_FIELDS = {f.name: f for f in fields(GenerationConfig)}
KNOBS = tuple(_FIELDS)  # every knob's name, GenerationConfig's spelling
# The page's knob groups, in GenerationConfig's order: what a planned run reads, what the AR
# baseline reads, and what a sweep reads (it sets the step ratio and the threshold itself).
PLANNED_KNOBS = tuple(name for name, f in _FIELDS.items() if f.metadata.get("page"))
AR_KNOBS = tuple(name for name, f in _FIELDS.items() if f.metadata.get("ar"))
SWEPT_KNOBS = ("steps_ratio", "threshold")
SWEEP_KNOBS = tuple(name for name in PLANNED_KNOBS if name not in SWEPT_KNOBS)
_WHOLE = tuple(name for name, f in _FIELDS.items() if f.type == "int")
_AUTO = ("length_scale", "max_new_tokens")  # None: the checkpoint's unit, the default budget


class Knobs:
    """The knobs of one run as a person set them, by GenerationConfig's names, not yet checked;
    a knob left out reads as GenerationConfig's default.

    Unlike GenerationConfig: length_scale None is the checkpoint's own unit, max_new_tokens None
    is the default budget (both read None when left out), and whole numbers may come as floats
    (3.0 from a slider or JSON). `config` checks them all.
    """

    __slots__ = ("_values",)

    def __init__(self, **values) -> None:
        unknown = sorted(set(values) - set(_FIELDS))
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(unknown)}")
        object.__setattr__(self, "_values", values)

    @classmethod
    def named(cls, values: Mapping) -> Knobs:
        """The knobs among `values` (a function's named arguments), the others at their defaults."""
        return cls(**{name: value for name, value in values.items() if name in _FIELDS})

    def __getattr__(self, name: str):
        if name not in _FIELDS:
            raise AttributeError(name)
        return self._values.get(name, None if name in _AUTO else _FIELDS[name].default)

    def __setattr__(self, name: str, value) -> None:
        raise AttributeError("Knobs are read-only; use replace")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Knobs) and self._values == other._values

    __hash__ = None  # the values may be unhashable (a plan)

    def __repr__(self) -> str:
        return f"Knobs({', '.join(f'{k}={v!r}' for k, v in self._values.items())})"

    def replace(self, **changes) -> Knobs:
        """These knobs with `changes`."""
        return Knobs(**{**self._values, **changes})

    def config(self, length_scale: int) -> GenerationConfig:
        """The GenerationConfig of these knobs; `length_scale` is the checkpoint's own unit.

        ConfigError names the knob that is wrong: GenerationConfig checks every value.
        """
        values = {name: value for name, value in self._values.items()
                  if not (name in _AUTO and value is None)}
        for name, value in values.items():
            if value is None and name != "plan":  # a plan of None: the model writes its own
                raise ConfigError(f"{name} is missing; give a value")
            if name in _WHOLE and isinstance(value, float) and math.isfinite(value) and value.is_integer():
                values[name] = int(value)  # sliders and JSON send 3.0 for 3
        return GenerationConfig(**{"length_scale": length_scale, **values})


def upgrade_schedule(values: Mapping) -> dict:
    """Schedule knobs in the spelling before `schedule` was a knob, in today's; the rest as given.

    Then, a threshold of None was the reference schedule and a threshold ran the rule named by
    `threshold_rule` (the paper's when not named). Checkpoint configs ("decoding") and traces
    written then hold that spelling; so does the bench grid of the README. A mapping that has no
    `schedule` but has a `threshold` or a `threshold_rule` is read so; any other is returned as
    it is. ConfigError names a rule that is not one, or the two names given together.
    """
    values = dict(values)
    if "schedule" in values:
        if "threshold_rule" in values:
            raise ConfigError("threshold_rule is the old name of schedule; give schedule only")
        return values
    if "threshold" not in values and "threshold_rule" not in values:
        return values
    rule = values.pop("threshold_rule", "paper")
    if rule not in ("paper", "adaptive"):  # the old rules: the reference was threshold None
        raise ConfigError(f"threshold_rule must be one of paper, adaptive; got {rule!r}")
    if values.get("threshold") is None:
        values.pop("threshold", None)  # the reference schedule: GenerationConfig's threshold
        values["schedule"] = "reference"
    else:
        values["schedule"] = rule
    return values
