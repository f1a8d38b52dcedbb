"""Plans: parse the model's plan tokens into items, read and render user plans, join clean text.

Grammar (spec section 2):
    response := round+
    round    := item+ ("<sync/>" | "<|im_end|>")
    item     := "<promise>-<topic>" TOPIC_TEXT " " N "</topic>"

pdiff reads N as the trailing integer before `</topic>`, clamps it, and reports malformed items
instead of crashing (the reference took the first digit anywhere, and crashed on none). This
module works on ids and strings; it knows nothing about models or sampling.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pdiff.events import PlanItem
from pdiff.tags import IM_END, PROMISE, SYNC, TOPIC_END, TagIds

_TRAILING_INT = re.compile(r"^(.*?)\s*(\d+)\s*$", re.DOTALL)
_LIST_NUMBER = re.compile(r"^\d+[.)]\s")


class PlanError(ValueError):
    """A user-supplied plan that cannot be used; the message says what to change."""


@dataclass(frozen=True)
class PlanRound:
    """One round of a user plan: items (topic, units) and how the round ends."""

    items: tuple[tuple[str, int], ...]
    terminator: str  # "sync" or "end"


@dataclass(frozen=True)
class ParsedItem:
    topic: str
    units: int  # after clamping


def item_parts(body: str) -> tuple[str, str] | None:
    """'topic text N' as (topic, the digits of N): N is the trailing integer. None without one."""
    match = _TRAILING_INT.match(body)
    return None if match is None else (match.group(1).strip(), match.group(2))


def parse_item(body: str, max_units: int) -> tuple[ParsedItem | None, str | None]:
    """Read 'topic text N' into an item. Returns (item, None), or (item|None, problem)."""
    parts = item_parts(body)
    if parts is None:
        return None, f"plan item {body.strip()[:40]!r} has no length; it was skipped"
    topic, digits = parts
    units = int(digits) if len(digits) <= 9 else max_units + 1
    if units == 0:
        return None, f"plan item {topic[:40]!r} promises 0 tokens; it was skipped"
    if units > max_units:
        shown = digits if len(digits) <= 12 else digits[:12] + "..."
        return ParsedItem(topic, max_units), (
            f"plan item {topic[:40]!r} asked for {shown} units; clamped to {max_units}"
        )
    return ParsedItem(topic, units), None


def parse_plan_ids(
    ids: list[int], tags: TagIds, decode, max_units: int
) -> tuple[list[ParsedItem], list[str]]:
    """Split one round's plan ids (terminator excluded) into items and problems.

    `decode` maps a list of ids to text. Text outside items is reported, never fatal.
    """
    items: list[ParsedItem] = []
    problems: list[str] = []
    body: list[int] | None = None  # ids of the item being read, None outside items
    stray: list[int] = []
    for tok in ids:
        if tok == tags.promise:
            if body is not None:
                problems.append("a plan item was opened twice without </topic>; kept the second")
            body = []
        elif tok == tags.topic_end and body is not None:
            item, problem = parse_item(decode(body), max_units)
            if item is not None:
                items.append(item)
            if problem:
                problems.append(problem)
            body = None
        elif body is not None:
            body.append(tok)
        else:
            stray.append(tok)
    if body is not None:
        problems.append("the plan ended inside an item; that item was skipped")
    if decode(stray).strip():
        problems.append(f"text outside plan items was ignored: {decode(stray).strip()[:40]!r}")
    return items, problems


def parse_user_plan(text: str, max_units: int) -> tuple[PlanRound, ...]:
    """Read plan markup typed by a user. Raises PlanError naming the first problem.

    Inside an item body everything up to `</topic>` is topic text, tags included, and is later
    encoded as plain text: a topic can never open a round or end the answer.
    """
    if not isinstance(text, str) or not text.strip():
        raise PlanError("the plan is empty; write items like <promise>-<topic>intro 3</topic><|im_end|>")
    rounds: list[PlanRound] = []
    items: list[tuple[str, int]] = []
    at = 0
    while at < len(text):
        if text[at].isspace():
            at += 1
        elif text.startswith(PROMISE, at):
            end = text.find(TOPIC_END, at)
            if end < 0:
                raise PlanError(f"plan item at character {at} has no closing {TOPIC_END}")
            body = text[at + len(PROMISE):end]
            item, problem = parse_item(body, max_units)
            if item is None or (problem and "clamped" not in problem):
                raise PlanError(problem)
            items.append((item.topic, item.units))
            at = end + len(TOPIC_END)
        elif text.startswith(SYNC, at) or text.startswith(IM_END, at):
            sync = text.startswith(SYNC, at)
            if not items:
                raise PlanError(f"a round ends at character {at} before it has any item")
            rounds.append(PlanRound(tuple(items), "sync" if sync else "end"))
            items = []
            at += len(SYNC if sync else IM_END)
            if not sync and text[at:].strip():
                raise PlanError(f"text after {IM_END} (the last round) is not allowed")
        else:
            raise PlanError(
                f"unexpected text outside a plan item at character {at}: {text[at:at + 20]!r}"
            )
    if items:
        raise PlanError(f"the last round has no terminator; end it with {SYNC} or {IM_END}")
    return tuple(rounds)


def check_plan_rounds(rounds, max_units: int) -> tuple[PlanRound, ...]:
    """Validate a structured plan (the app's editor). Raises PlanError naming the problem."""
    checked = []
    for r, rnd in enumerate(rounds):
        if not isinstance(rnd, PlanRound) or rnd.terminator not in ("sync", "end"):
            raise PlanError(f"round {r + 1} must be a PlanRound ending in 'sync' or 'end'")
        if not rnd.items:
            raise PlanError(f"round {r + 1} has no items")
        for topic, units in rnd.items:
            if not isinstance(topic, str) or not topic.strip():
                raise PlanError(f"round {r + 1}: every item needs a topic")
            if isinstance(units, bool) or not isinstance(units, int) or not 1 <= units <= max_units:
                raise PlanError(
                    f"round {r + 1}: length of {topic[:30]!r} must be 1..{max_units}, got {units!r}")
        if rnd.terminator == "end" and r != len(rounds) - 1:
            raise PlanError(f"round {r + 1} ends the answer but more rounds follow")
        checked.append(rnd)
    if not checked:
        raise PlanError("the plan has no rounds")
    return tuple(checked)


def check_user_plan(plan, max_units: int) -> tuple[PlanRound, ...]:
    """A user plan as GenerationConfig holds it (markup, PlanRounds or None) as checked rounds;
    () for none. Raises PlanError naming the problem."""
    if plan is None:
        return ()
    if isinstance(plan, str):
        return parse_user_plan(plan, max_units)
    return check_plan_rounds(plan, max_units)


def fit_budget(items: list[ParsedItem], scale: int, room: int,
               max_new_tokens: int) -> tuple[list[PlanItem], str | None]:
    """Items as spans of `scale` tokens a unit that fit in `room` tokens with their two tags and
    a later <sync/>: the last ones are cut, a span is never cut mid-budget. Returns the spans and,
    when anything was cut, what to tell the user."""
    room -= 1  # keep one for a later <sync/>
    fitted: list[PlanItem] = []
    for item in items:
        length = item.units * scale
        if room - 2 < 1:
            break
        length = min(length, room - 2)
        fitted.append(PlanItem(item.topic, item.units, length))
        room -= length + 2
    cut = [i for i, f in zip(items, fitted) if f.length < i.units * scale]
    if len(fitted) == len(items) and not cut:
        return fitted, None
    return fitted, (f"the plan promised more than max_new_tokens={max_new_tokens} allows; "
                    f"kept {len(fitted)} of {len(items)} spans" + (", the last one shortened" if cut else ""))


def render_plan(rounds) -> str:
    """Plan rounds back to markup; the inverse of parse_user_plan for well-formed plans."""
    out = []
    for rnd in rounds:
        for topic, units in rnd.items:
            out.append(f"{PROMISE}{topic} {units}{TOPIC_END}")
        out.append(SYNC if rnd.terminator == "sync" else IM_END)
    return "".join(out)


def join_spans(span_texts: list[str]) -> str:
    """Clean text: spans in plan order, one space apart, a newline before a list number."""
    out = ""
    for text in (t.strip() for t in span_texts):
        if not text:
            continue
        if out:
            out += "\n" if _LIST_NUMBER.match(text) else " "
        out += text
    return out
