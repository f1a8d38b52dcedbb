"""What a real run of the loaded model could produce: the bounds an uploaded trace is held to.

An uploaded trace is untrusted. `TraceLimits.of(engine, cap)` is what one run of that engine on
this server can produce: its context, its vocabulary, this server's max_new_tokens, the
engine's limits on rounds and span units. `TraceCheck` holds a trace's events to those limits
one at a time, before the view folds them, so no number in a trace ever sizes an allocation
beyond what a real run would; `check_settings` holds a trace's settings to GenerationConfig's
own checks. `check_text` refuses text that is not valid Unicode (a lone surrogate). Every
refusal is a `TraceError` (or ConfigError) with one line. This module knows nothing of gradio,
torch or HTML.
"""

from __future__ import annotations

from dataclasses import dataclass

from pdiff.config import LIMITS, MODES, ConfigError, GenerationConfig
from pdiff.events import (
    DenoiseStep,
    Event,
    Finished,
    Notice,
    PlanToken,
    RoundEnd,
    SpansOpened,
    Started,
    TextToken,
)

MAX_TOKEN_CHARS = 256  # one token's text; the tokenizers here have none near this long
MAX_NOTE_CHARS = 1_000  # a notice's kind and message
MAX_TOPIC_CHARS = 2_000  # a plan item's topic
MAX_PROMPT_CHARS = 20_000  # the page's cap on a prompt: the engine's own limit is the model's context
MAX_ROUNDS = int(LIMITS["max_rounds"][1])
MAX_UNITS = int(LIMITS["max_span_units"][1])
MAX_RATIO = LIMITS["steps_ratio"][1]


class TraceError(ValueError):
    """A trace that cannot be read; the message says why in a line, without paths or code."""


def check_text(value, what: str) -> None:
    """Refuse text that is not valid Unicode (a lone surrogate such as "\\ud800")."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ConfigError(f"the {what} holds a character that is not valid text (a lone "
                              "surrogate); retype it") from None


@dataclass(frozen=True)
class TraceLimits:
    """What one run of the loaded model on this server can produce."""

    context: int  # the model's context: prompt plus everything after it
    vocab: int  # token ids are in [0, vocab)
    max_new_tokens: int  # this server's cap (PDIFF_MAX_NEW_TOKENS)

    @classmethod
    def of(cls, engine, max_new_tokens: int) -> TraceLimits:
        return cls(engine.context, engine.model.config.vocab_size, max_new_tokens)

    @property
    def max_events(self) -> int:
        """Started, then at most one token event and one denoise step per new token (every
        step commits at least one slot of every unfinished span), two events a round, one
        notice per token or round, Finished."""
        return 2 + 3 * self.max_new_tokens + 3 * MAX_ROUNDS + 8

    @property
    def max_slots(self) -> int:
        """Slots over every denoise step: at most max_new_tokens steps of max_new_tokens slots."""
        return self.max_new_tokens ** 2


def _need(ok: bool, message: str) -> None:
    if not ok:
        raise TraceError(message)


def _ids(ids, limits: TraceLimits, what: str) -> None:
    _need(all(0 <= i < limits.vocab for i in ids), f"{what} has a token id outside this model's "
                                                   f"vocabulary of {limits.vocab}")


def _texts(texts, limit: int, what: str) -> None:
    for t in texts:
        if t is not None:
            _need(len(t) <= limit, f"{what} has a text over {limit} characters")
            try:
                t.encode("utf-8")
            except UnicodeEncodeError:
                raise TraceError(f"{what} holds a lone surrogate, which is not text") from None


class TraceCheck:
    """Hold a trace's events, in order, to what a real run could produce (`check` each one)."""

    def __init__(self, limits: TraceLimits) -> None:
        self.limits = limits
        self.events = self.tokens = self.steps = self.slots = 0
        self.prompt_tokens: int | None = None
        self.longest: dict[int, int] = {}  # round -> its longest span
        self.finished = False

    def check(self, ev: Event) -> None:  # noqa: C901 - one rule per event type, in one place
        lim = self.limits
        self.events += 1
        _need(self.events <= lim.max_events, f"the trace has over {lim.max_events} events; a run "
              f"on this server (max_new_tokens {lim.max_new_tokens}) has fewer")
        _need(not self.finished, "an event follows the run's Finished event")
        _need(isinstance(ev, Started) == (self.prompt_tokens is None),
              "a trace starts with one Started event" if self.prompt_tokens is None
              else "a trace has one Started event")
        rnd = getattr(ev, "round", 0)
        _need(0 <= rnd < MAX_ROUNDS, f"round {rnd} is outside 1..{MAX_ROUNDS}")
        if isinstance(ev, Started):
            _need(ev.mode in MODES, f"mode {ev.mode[:20]!r} is not a pdiff mode")
            _need(0 < ev.prompt_tokens < lim.context and ev.prompt_tokens == len(ev.prompt_ids),
                  f"the prompt's token count must be 1..{lim.context - 1} (this model's context) "
                  "and match its ids")
            _ids(ev.prompt_ids, lim, "the prompt")
            self.prompt_tokens = ev.prompt_tokens
        elif isinstance(ev, (PlanToken, TextToken)):
            self._spend(1)
            _ids((ev.token_id,), lim, "a token")
            _texts((ev.text,), MAX_TOKEN_CHARS, "a token")
        elif isinstance(ev, Notice):
            _texts((ev.kind, ev.message), MAX_NOTE_CHARS, "a notice")
        elif isinstance(ev, SpansOpened):
            self._opened(ev)
        elif isinstance(ev, DenoiseStep):
            self._step(ev)
        elif isinstance(ev, RoundEnd):
            _texts(ev.span_texts, MAX_TOKEN_CHARS * lim.max_new_tokens, "a span text")
        elif isinstance(ev, Finished):
            self._finished(ev)

    def _spend(self, tokens: int) -> None:
        self.tokens += tokens
        room = min(self.limits.max_new_tokens, self.limits.context - (self.prompt_tokens or 0))
        _need(self.tokens <= room, f"the trace writes more than {room} new tokens, more than a run "
              f"on this server can (max_new_tokens {self.limits.max_new_tokens}, this model's "
              f"context {self.limits.context})")

    def _opened(self, ev: SpansOpened) -> None:
        _need(bool(ev.items), "spans opened with no plan item")
        _need(ev.terminator in ("sync", "end"), "a round ends with sync or end")
        for item in ev.items:
            _need(0 <= item.units <= MAX_UNITS and 0 < item.length <= self.limits.max_new_tokens,
                  f"a span must be 1..{self.limits.max_new_tokens} tokens and 0..{MAX_UNITS} "
                  f"units; got {item.length} tokens, {item.units} units")
            _texts((item.topic,), MAX_TOPIC_CHARS, "a plan topic")
        self._spend(sum(i.length for i in ev.items))
        longest = max(i.length for i in ev.items)
        _need(1 <= ev.steps <= max(1, int(longest * MAX_RATIO)),
              f"a round of spans up to {longest} tokens is scheduled 1..{int(longest * MAX_RATIO)} "
              f"steps; got {ev.steps}")
        self.longest[ev.round] = longest

    def _step(self, ev: DenoiseStep) -> None:
        longest = self.longest.get(ev.round, 0)
        _need(0 <= ev.step < max(1, longest), f"denoise step {ev.step} is outside the round's "
              f"0..{longest - 1} (every step commits a slot of every unfinished span)")
        self.steps += 1
        self.slots += sum(len(t) for t in ev.tokens)
        _need(self.steps <= self.limits.max_new_tokens and self.slots <= self.limits.max_slots,
              "the trace has more denoise steps than its spans' tokens")
        for ids in ev.token_ids:
            _ids(ids, self.limits, "a denoise step")
        for texts in ev.tokens:
            _texts(texts, MAX_TOKEN_CHARS, "a denoise step")
        _need(all(c is None or 0.0 <= c <= 1.0 for row in ev.confidence for c in row),
              "a confidence is outside 0..1")

    def _finished(self, ev: Finished) -> None:
        s, lim = ev.stats, self.limits
        self.finished = True
        _need(len(ev.token_ids) <= lim.max_new_tokens and len(ev.prompt_ids) < lim.context,
              f"the answer is over max_new_tokens {lim.max_new_tokens}")
        _ids(ev.prompt_ids, lim, "the answer")
        _ids(ev.token_ids, lim, "the answer")
        _texts((ev.text,), MAX_TOKEN_CHARS * lim.max_new_tokens, "the answer")
        _need(len(ev.plan) <= MAX_ROUNDS and all(
            0 <= i.units <= MAX_UNITS and 0 < i.length <= lim.max_new_tokens for r in ev.plan for i in r),
            "the answer's plan does not fit a run on this server")
        _texts((i.topic for r in ev.plan for i in r), MAX_TOPIC_CHARS, "the answer's plan")
        counts = [v for v in vars(s).values() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        _need(all(0 <= v < 10**9 for v in counts), "the run's stats hold a negative or huge count")
        _need(s.mode in MODES and s.prompt_tokens == self.prompt_tokens,
              "the run's stats do not match its start")


SETTING_KEYS = ("prompt", "model")  # what a trace adds to GenerationConfig's fields


def check_settings(settings: dict, limits: TraceLimits) -> dict:
    """A trace's settings, held to what this server could have run: only known keys, scalar
    values, GenerationConfig's own checks. TraceError says what is wrong."""
    _need(isinstance(settings, dict), "a trace's settings are an object")
    for key, value in settings.items():
        _need(value is None or isinstance(value, (str, int, float, bool)),
              f"setting {str(key)[:40]!r} must be a plain value, not a list or object")
        _texts((key, value) if isinstance(value, str) else (key,), MAX_PROMPT_CHARS, "the settings")
    prompt, model = settings.get("prompt", ""), settings.get("model", "")
    _need(isinstance(prompt, str) and isinstance(model, str), "the trace's prompt and model are text")
    config = {k: v for k, v in settings.items() if k not in SETTING_KEYS}
    try:
        cfg = GenerationConfig.from_dict(config)
    except (ConfigError, TypeError) as err:
        raise TraceError(f"the trace's settings are not a run's: {str(err)[:160]}") from None
    _need("max_new_tokens" not in config or cfg.max_new_tokens <= limits.max_new_tokens,
          f"the trace ran with max_new_tokens {cfg.max_new_tokens}; this server allows at most "
          f"{limits.max_new_tokens}")
    return dict(settings)
