"""What a page adds to the engine's own checks: the prompt's size, this server's budget, the plan
editor's rows and the sweep's grid.

A click's knobs arrive as `pdiff.config.Knobs`; `run_config` maps them to a GenerationConfig
through `Knobs.config`, with this server's default and cap on max_new_tokens. Everything else a
run needs checking (an empty prompt, one over the model's context, a plan that does not fit) the
engine checks itself. `rows_to_plan` reads the editor's table into plan rounds, naming the row
and what to change; `plan_rows` writes a run's rounds back as rows. This module knows nothing of
gradio, models or HTML.
"""

from __future__ import annotations

import itertools
import math

from pdiff.app.fold import RunView
from pdiff.app.guard import MAX_PROMPT_CHARS, check_text  # the page's cap on a prompt
from pdiff.config import DECODING_KNOBS, ConfigError, GenerationConfig, Knobs
from pdiff.plan import PlanError, PlanRound

DEFAULT_MAX_NEW_TOKENS = GenerationConfig.max_new_tokens  # or the server's cap, whichever is smaller
MAX_SPAN_UNITS = GenerationConfig.max_span_units  # the editor's lengths are checked against it
PLAN_HEADERS = ["round", "topic", "length units", "ends with"]
# Every schedule commits at least one token per unfinished span per step, so a span never needs
# more steps than tokens: a steps_ratio above 1 changes nothing, and the page stops at 1.
MAX_STEPS_RATIO = 1.0
SWEEP_RATIOS = (0.25, 0.5, 0.75, 1.0)
SWEEP_THRESHOLD = GenerationConfig.threshold  # the threshold of the sweep's threshold runs


def check_prompt(prompt) -> None:
    """Refuse a prompt over the page's size cap, or one that is not valid text, at once, before
    any tokenizing."""
    if isinstance(prompt, str) and len(prompt) > MAX_PROMPT_CHARS:
        raise ConfigError(f"the prompt is {len(prompt)} characters; at most {MAX_PROMPT_CHARS} are read")
    check_text(prompt, "prompt")


def run_config(knobs: Knobs, engine, max_new_tokens_cap: int) -> GenerationConfig:
    """The GenerationConfig of a click's knobs for `engine`. ConfigError says which is wrong.

    max_new_tokens None: DEFAULT_MAX_NEW_TOKENS or the server's cap, whichever is smaller.
    """
    if knobs.max_new_tokens is None:
        knobs = knobs.replace(max_new_tokens=min(DEFAULT_MAX_NEW_TOKENS, max_new_tokens_cap))
    config = knobs.config(engine.length_scale)  # GenerationConfig validates every knob
    if config.max_new_tokens > max_new_tokens_cap:
        raise ConfigError(f"max_new_tokens must be at most {max_new_tokens_cap} on this server "
                          f"(PDIFF_MAX_NEW_TOKENS); got {config.max_new_tokens}")
    return config


# The reference schedule as the page's controls show it: GenerationConfig's schedule knobs, one
# token per span per step (the threshold slider rests at its default; the reference ignores it).
REFERENCE_SCHEDULE = {name: getattr(GenerationConfig, name) for name in DECODING_KNOBS}


def default_schedule(engine) -> dict:
    """The checkpoint's default schedule (its measured best point, `engine.decoding`) as control
    values: steps_ratio, schedule and threshold, as `engine.default_config` has them."""
    config = engine.default_config()
    return {name: getattr(config, name) for name in DECODING_KNOBS}


def threshold_props(schedule) -> dict:
    """The threshold slider's label, hint and whether it can be moved, under `schedule`: the
    reference schedule has no threshold, so there the slider is greyed and says it does not
    apply (its value is kept for the other schedules)."""
    if schedule == "reference":
        return {"interactive": False, "label": "Confidence threshold (not used)",
                "info": "The reference schedule commits a fixed number of slots per step; pick "
                        "paper or adaptive to use a threshold"}
    return {"interactive": True, "label": "Confidence threshold",
            "info": "Commit slots surer than this"}


def schedule_note(engine) -> str:
    """One line that says which schedule is which, from the checkpoint's own defaults."""
    reference = ("the reference schedule (no threshold, step ratio 1: the paper's, one token "
                 "per span per step)")
    s = default_schedule(engine)
    if s["schedule"] == "reference" and s["steps_ratio"] == REFERENCE_SCHEDULE["steps_ratio"]:
        return f"This model's default is {reference}."
    rule = f"{s['schedule']} threshold {s['threshold']:g}, " if s["schedule"] != "reference" else ""
    return (f"**Default schedule**: {rule}step ratio {s['steps_ratio']:g}, this model's measured "
            "best speed/quality point (its model card says how it was chosen). "
            f"**Reference**: {reference}.")


def sweep_grid(limit: int, schedule: str) -> list[tuple[float, str]]:
    """(steps_ratio, schedule) runs: ratios x {the reference, `schedule` at SWEEP_THRESHOLD}, at
    most `limit`, spread. With the reference (or no schedule) picked, the paper's is the second."""
    schedule = schedule if schedule in ("paper", "adaptive") else "paper"  # the two with a threshold
    grid = [(ratio, s) for s, ratio in itertools.product(("reference", schedule), SWEEP_RATIOS)]
    if limit >= len(grid):
        return grid
    picks = sorted({round(i * (len(grid) - 1) / max(1, limit - 1)) for i in range(limit)})
    return [grid[i] for i in picks][:limit]


# --- plan editor table <-> PlanRound ------------------------------------------------------------


def plan_rows(view: RunView) -> list[list]:
    """The editor rows of a run's opened rounds; 'ends with' is written on a round's last row."""
    rows = []
    for n, rnd in enumerate((r for r in view.ordered_rounds() if r.opened), start=1):
        for i, span in enumerate(rnd.spans):
            last = i == len(rnd.spans) - 1
            rows.append([n, span.topic, span.units, (rnd.terminator or "end") if last else ""])
    return rows


def _cells(table) -> list[list]:
    if isinstance(table, dict):  # the API form {"headers": [...], "data": [[...]]}
        table = table.get("data")
    if hasattr(table, "values") and hasattr(table, "columns"):  # a pandas DataFrame
        table = table.values.tolist()
    if not isinstance(table, (list, tuple)):
        raise PlanError("the plan table must be rows of (round, topic, length units, ends with)")
    return [list(r) if isinstance(r, (list, tuple)) else [r] for r in table]


def _blank(cell) -> bool:
    return cell is None or (isinstance(cell, float) and math.isnan(cell)) or str(cell).strip() == ""


def _whole_cell(cell, what: str, row: int) -> int:
    try:
        value = float(str(cell).strip())
    except ValueError:
        raise PlanError(f"row {row}: {what} must be a whole number; got {str(cell)[:20]!r}") from None
    if not math.isfinite(value) or not value.is_integer():
        raise PlanError(f"row {row}: {what} must be a whole number; got {str(cell)[:20]!r}")
    return int(value)


_ENDS = {"sync": "sync", "<sync/>": "sync", "end": "end", "<|im_end|>": "end"}


def _read_row(row: list, r: int, max_units: int) -> tuple[int, str, int, str | None]:
    """(round, topic, units, terminator or None) of editor row number `r`."""
    rnd = _whole_cell(row[0], "round", r)
    if rnd < 1:
        raise PlanError(f"row {r}: round must be 1 or more; got {rnd}")
    topic = "" if _blank(row[1]) else str(row[1]).strip()
    if not topic:
        raise PlanError(f"row {r}: the topic is empty")
    try:
        check_text(topic, f"topic of row {r}")
    except ConfigError as err:
        raise PlanError(str(err)) from None
    if _blank(row[2]):
        raise PlanError(f"row {r}: give a length in units (1..{max_units})")
    units = _whole_cell(row[2], "length units", r)
    if not 1 <= units <= max_units:
        raise PlanError(f"row {r}: length units must be 1..{max_units}; got {units}")
    end = "" if _blank(row[3]) else str(row[3]).strip().lower()
    if end and end not in _ENDS:
        raise PlanError(f"row {r}: 'ends with' must be sync or end; got {str(row[3])[:20]!r}")
    return rnd, topic, units, _ENDS.get(end)


def rows_to_plan(table, max_units: int) -> tuple[PlanRound, ...]:
    """Editor rows -> plan rounds. PlanError names the row and what to change.

    Rows are grouped by round number in increasing order; blank rows are skipped. A round ends
    with the 'ends with' value of its rows (sync or end); left blank, the last round ends and
    the others sync. Topics stay plain text, tags included: the engine encodes them as text.
    """
    groups: dict[int, list[tuple[str, int]]] = {}
    ends: dict[int, set[str]] = {}
    for r, row in enumerate(_cells(table), start=1):
        row = (row + [None] * 4)[:4]
        if all(_blank(c) for c in row):
            continue
        rnd, topic, units, end = _read_row(row, r, max_units)
        groups.setdefault(rnd, []).append((topic, units))
        if end:
            ends.setdefault(rnd, set()).add(end)
    if not groups:
        raise PlanError("the plan table is empty; add rows of round, topic, length units")
    rounds = []
    order = sorted(groups)
    for i, rnd in enumerate(order):
        given = ends.get(rnd, set())
        if len(given) > 1:
            raise PlanError(f"round {rnd} is marked both sync and end; pick one")
        last = i == len(order) - 1
        terminator = given.pop() if given else ("end" if last else "sync")
        if terminator == "end" and not last:
            raise PlanError(f"round {rnd} ends the answer but round {order[i + 1]} follows; "
                            "mark it sync")
        rounds.append(PlanRound(tuple(groups[rnd]), terminator))
    return tuple(rounds)
