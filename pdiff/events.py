"""The typed events a generation streams, and its stats.

Every consumer (the CLI, the app's view, the benchmark, the tests) reads the same stream. Events
are frozen dataclasses holding plain data only: ids, strings, numbers and tuples. No tensors, no
colours. `to_dict`/`from_dict` give the JSON form used by traces. This module knows nothing
about models, tensors or displays.
"""

from __future__ import annotations

import dataclasses
from dataclasses import MISSING, dataclass

TOP_CANDIDATES = 5  # candidates a DenoiseStep keeps per committed slot


@dataclass(frozen=True)
class PlanItem:
    """One promise of a plan: a topic and a length in tokens (units x length_scale)."""

    topic: str
    units: int  # the N the plan wrote, after clamping
    length: int  # span length in tokens: units * length_scale, after any budget cut


@dataclass(frozen=True)
class Started:
    """The run begins: the prompt as the model sees it."""

    mode: str
    prompt_ids: tuple[int, ...]
    prompt_tokens: int


@dataclass(frozen=True)
class PlanToken:
    """One plan token, as the model wrote it (or as the user forced it)."""

    round: int
    token_id: int
    text: str  # this token's text, tags shown as they are
    forced: bool  # True when it came from a user-supplied plan


@dataclass(frozen=True)
class TextToken:
    """One token written autoregressively: the AR baseline, or a fallback after no plan."""

    token_id: int
    text: str


@dataclass(frozen=True)
class Notice:
    """Something the user should know: a malformed item, a cut span, a fallback."""

    kind: str  # malformed_item | budget | runaway_plan | no_plan | max_rounds | context
    message: str


@dataclass(frozen=True)
class SpansOpened:
    """The plan of a round closed: one block per item opens, all at once."""

    round: int
    items: tuple[PlanItem, ...]
    terminator: str  # "sync": planning resumes after these spans; "end": last round
    steps: int  # the scheduled number of denoise steps


@dataclass(frozen=True)
class Candidate:
    """One of the model's most likely tokens for a slot, at the step that slot was committed."""

    token_id: int
    text: str  # the token's text, tags shown as they are
    prob: float  # under the model's own distribution: temperature 1, no top-p or top-k


@dataclass(frozen=True)
class DenoiseStep:
    """One parallel denoise step over every span of a round."""

    round: int
    step: int  # 0-based within the round
    tokens: tuple[tuple[str | None, ...], ...]  # per span, per slot: text, or None while masked
    token_ids: tuple[tuple[int, ...], ...]  # per span, per slot (the mask id while masked)
    committed: tuple[tuple[int, ...], ...]  # per span: slots committed in this step
    confidence: tuple[tuple[float | None, ...], ...]  # per span, per slot: prob. at commit
    # Per span, per slot of `committed` (same order): the model's top candidates (at most
    # TOP_CANDIDATES), most likely first. Empty in traces written before it existed.
    top: tuple[tuple[tuple[Candidate, ...], ...], ...] = ()


@dataclass(frozen=True)
class RoundEnd:
    round: int
    span_texts: tuple[str, ...]  # each span's clean text


@dataclass(frozen=True)
class Stats:
    """What a run cost. critical_path counts the sequential model calls."""

    mode: str
    prompt_tokens: int
    plan_seconds: float  # prefill and planning (all AR decoding in the AR baseline)
    denoise_seconds: float
    total_seconds: float
    forward_passes: int  # model calls, counted where they happen
    prefill_forwards: int  # calls that only ingest known tokens (a user plan, a final refresh)
    plan_tokens: int  # sampled AR tokens: plan tokens, terminators, AR text
    denoise_steps: int
    rounds: int
    spans: int
    generated_tokens: int  # ids after the prompt, tags included
    critical_path: int  # plan_tokens + denoise_steps + prefill_forwards
    tokens_per_forward: float  # generated_tokens / forward_passes: the realised parallelism
    mean_confidence: float | None  # mean probability of committed span and AR text tokens


@dataclass(frozen=True)
class Finished:
    """The last event of every run."""

    text: str  # the clean answer
    prompt_ids: tuple[int, ...]
    token_ids: tuple[int, ...]  # generated ids after the prompt, tags included, sequence order
    plan: tuple[tuple[PlanItem, ...], ...]  # rounds of items
    stats: Stats


Event = Started | PlanToken | TextToken | Notice | SpansOpened | DenoiseStep | RoundEnd | Finished
EVENT_TYPES = {cls.__name__: cls for cls in Event.__args__}


def to_dict(event: Event) -> dict:
    """JSON-ready form: {"type": name, **fields}."""
    return {"type": type(event).__name__, **dataclasses.asdict(event)}


def _tuples(value):
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def from_dict(data: dict) -> Event:
    """Inverse of to_dict; raises ValueError on anything that is not an event."""
    if not isinstance(data, dict) or data.get("type") not in EVENT_TYPES:
        raise ValueError(f"not an event: {str(data)[:80]!r}")
    cls = EVENT_TYPES[data["type"]]
    fields = dataclasses.fields(cls)
    names = {f.name for f in fields}
    required = {f.name for f in fields if f.default is MISSING}  # a field with a default is newer
    if not required <= set(data) - {"type"} <= names:
        optional = "".join(f", {n} optional" for n in sorted(names - required))
        raise ValueError(f"a {cls.__name__} event needs exactly the fields {sorted(names)}{optional}")
    values = {k: _tuples(v) for k, v in data.items() if k != "type"}
    if cls is SpansOpened:
        values["items"] = tuple(PlanItem(**dict(i)) for i in data["items"])
    if cls is Finished:
        values["plan"] = tuple(tuple(PlanItem(**dict(i)) for i in r) for r in data["plan"])
        values["stats"] = Stats(**data["stats"])
    if cls is DenoiseStep and "top" in data:
        values["top"] = tuple(tuple(tuple(Candidate(**dict(c)) for c in slot) for slot in span)
                              for span in data["top"])
    return cls(**values)
