"""Generation settings: one frozen, validated dataclass, and the knobs a person sets.

Every knob of the engine lives in `GenerationConfig` with its default and its limits. `Knobs` is
the same knobs as they arrive from a person (CLI flags, API arguments, sliders), and
`Knobs.config` is the one mapping from them to a GenerationConfig; the CLI and the app both use
it. Errors name the bad value, so the CLI and the app can show them as they are. This module
knows nothing about models, pages or terminals.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields

MODES = ("planned", "autoregressive", "diffusion")
THRESHOLD_RULES = ("paper", "adaptive")  # spec section 4: paper adds steps, adaptive removes them
UNMASK_SCORES = ("entropy", "confidence", "margin")
ATTENTIONS = ("sparse", "dense")
THRESHOLD_CHOICES = ("off", *THRESHOLD_RULES)  # as a person picks it: "off" is the reference schedule

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
DECODING_KNOBS = ("steps_ratio", "threshold", "threshold_rule")


class ConfigError(ValueError):
    """A setting is out of range or of the wrong kind; the message names it and its value."""


@dataclass(frozen=True)
class GenerationConfig:
    mode: str = "planned"  # planned | autoregressive | diffusion (the two baselines)
    steps_ratio: float = 1.0  # denoise steps = int(longest span * steps_ratio), at least 1
    threshold: float | None = None  # None: the reference schedule; else a confidence threshold
    threshold_rule: str = "paper"  # paper: threshold only adds steps; adaptive: it removes steps
    unmask: str = "entropy"  # score that ranks masked positions: entropy | confidence | margin
    temperature: float = 0.2  # 0 is greedy; the released demo uses 0.2
    top_p: float = 0.95  # nucleus sampling mass; 1.0 turns it off
    top_k: int = 0  # 0 turns it off
    seed: int = 0  # seeds the one torch.Generator of a run
    length_scale: int = 10  # tokens per plan length unit; the released models were trained with 10
    attention: str = "sparse"  # sparse: spans do not see each other; dense: spans of a round do
    use_cache: bool = True  # exact KV cache of the prefix (spec section 5)
    max_new_tokens: int = 512  # bound on everything after the prompt: plan, tags and spans
    max_plan_tokens: int = 128  # cap on the plan tokens of one round (runaway plans stop here)
    max_rounds: int = 8  # cap on <sync/> rounds
    max_span_units: int = 20  # a plan item's N is clamped to this many units
    plan: str | tuple | None = None  # user plan rounds (markup or PlanRounds), used verbatim
    chat_template: bool = True  # wrap the prompt in the checkpoint's chat template

    def __post_init__(self) -> None:
        for name, allowed in (
            ("mode", MODES),
            ("threshold_rule", THRESHOLD_RULES),
            ("unmask", UNMASK_SCORES),
            ("attention", ATTENTIONS),
        ):
            value = getattr(self, name)
            if value not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
        for name, (low, high) in LIMITS.items():
            value = getattr(self, name)
            if name == "threshold" and value is None:
                continue
            integral = name not in ("steps_ratio", "threshold", "temperature", "top_p")
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

    @property
    def schedule(self) -> str:
        """Name of the commit schedule in sampling.SCHEDULES."""
        return "reference" if self.threshold is None else self.threshold_rule

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


_WHOLE = ("seed", "length_scale", "max_new_tokens", "top_k", "max_plan_tokens", "max_rounds")
_OPTIONAL = ("threshold", "plan", "length_scale", "max_new_tokens")  # None has a meaning for these


@dataclass(frozen=True)
class Knobs:
    """The knobs of one run as a person set them, by name, not yet checked.

    Unlike GenerationConfig: threshold_rule may be "off" (no threshold: the reference schedule),
    length_scale None is the checkpoint's own unit, max_new_tokens None is the default budget,
    and whole numbers may come as floats (3.0 from a slider or JSON). `config` checks them all.
    """

    mode: str = "planned"
    steps_ratio: float = 1.0
    threshold: float | None = None
    threshold_rule: str = "off"  # off | paper | adaptive
    unmask: str = "entropy"
    temperature: float = 0.2
    top_p: float = 0.95
    top_k: int = 0
    seed: int = 0
    length_scale: int | None = None  # None: the checkpoint's own
    attention: str = "sparse"
    use_cache: bool = True
    max_new_tokens: int | None = None  # None: GenerationConfig's default
    max_plan_tokens: int = 128
    max_rounds: int = 8
    plan: str | tuple | None = None  # markup or PlanRounds, used verbatim
    chat_template: bool = True

    @classmethod
    def named(cls, values: Mapping) -> Knobs:
        """The knobs among `values` (a function's named arguments), the others at their defaults."""
        return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})

    def config(self, length_scale: int) -> GenerationConfig:
        """The GenerationConfig of these knobs; `length_scale` is the checkpoint's own unit.

        ConfigError names the knob that is wrong: GenerationConfig checks every value.
        """
        if self.threshold_rule not in THRESHOLD_CHOICES:
            raise ConfigError(f"threshold_rule must be one of {', '.join(THRESHOLD_CHOICES)}; "
                              f"got {self.threshold_rule!r}")
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.threshold_rule == "off" or self.threshold is None:
            values.update(threshold=None, threshold_rule="paper")
        for name in ("length_scale", "max_new_tokens"):
            if values[name] is None:
                del values[name]
        for name, value in values.items():
            if value is None and name not in _OPTIONAL:
                raise ConfigError(f"{name} is missing; give a value")
            if name in _WHOLE and isinstance(value, float) and math.isfinite(value) and value.is_integer():
                values[name] = int(value)  # sliders and JSON send 3.0 for 3
        return GenerationConfig(**{"length_scale": length_scale, **values})


def schedule_knobs(decoding: Mapping) -> dict:
    """A checkpoint's default schedule (`Engine.decoding`, GenerationConfig values) as Knobs
    values: steps_ratio, threshold and threshold_rule, the rule "off" where it sets no threshold.
    An empty `decoding` gives the reference schedule, the Knobs defaults."""
    ref = Knobs()
    threshold = decoding.get("threshold")
    return {"steps_ratio": decoding.get("steps_ratio", ref.steps_ratio), "threshold": threshold,
            "threshold_rule": ref.threshold_rule if threshold is None
            else decoding.get("threshold_rule", GenerationConfig.threshold_rule)}
