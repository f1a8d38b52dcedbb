"""Generation settings: one frozen, validated dataclass, and the user-plan input.

Every knob of the engine lives here with its default and its limits. Errors name the bad value,
so the CLI and the app can show them as they are. This module knows nothing about models.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

MODES = ("planned", "autoregressive", "diffusion")
THRESHOLD_RULES = ("paper", "adaptive")  # spec section 4: paper adds steps, adaptive removes them
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
