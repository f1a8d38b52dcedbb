"""The bench's prompts: a `--prompts` JSONL file, the held-out notes prompts, or the probe.

A prompts line holds an 'instruction' (or 'prompt', with an optional 'input' after it), and may
give the 'facts' the answer should state ([key, value] pairs: a visitor set's, checked against
those rather than the facts the checker reads from the prompt) and the entity's 'name' (for the
copy probe, `pdiff.notes.probes`). The held-out split and the probe (`--probe N`: task-v6 prompts
with held-out names, `pdiff.notes.wide.probe_split`) give both, and are written to the run's
folder as such a file. This module knows nothing of models or of the report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pdiff.notes.data import Example, Fact, make_split, write_jsonl


@dataclass(frozen=True)
class PromptSet:
    texts: list[str]
    facts: list[tuple[Fact, ...] | None]  # per prompt, the facts its line gives; None: read them
    names: list[str | None]  # per prompt, the entity's name; None: no copy probe


def given_facts(value, where: str) -> tuple[Fact, ...] | None:
    """A line's "facts" as Facts: a list of [key, value] pairs of non-empty strings; None if absent."""
    if value is None:
        return None
    pair = lambda p: isinstance(p, list) and len(p) == 2 and all(isinstance(t, str) and t.strip() for t in p)
    if not isinstance(value, list) or not all(pair(p) for p in value):
        raise ValueError(f"{where}: 'facts' must be a list of [key, value] pairs of non-empty strings")
    return tuple(Fact(k.strip(), v.strip()) for k, v in value)


def read_prompts(path: str | Path, limit: int | None) -> PromptSet:
    """Each line's prompt, its given facts and its entity's name (see the module docstring)."""
    texts, facts, names = [], [], []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        text = row.get("instruction") or row.get("prompt") if isinstance(row, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{path} line {n} has no 'instruction' (or 'prompt') text")
        if row.get("input"):  # AlpacaEval/Alpaca rows may carry an input to the instruction
            text = f"{text}\n\n{row['input']}"
        name = row.get("name")
        if name is not None and not (isinstance(name, str) and name.strip() and name in text):
            raise ValueError(f"{path} line {n}: 'name' must be a non-empty string that its prompt has")
        texts.append(text)
        facts.append(given_facts(row.get("facts"), f"{path} line {n}"))
        names.append(name)
    cut = slice(None, limit or None)
    return PromptSet(texts[cut], facts[cut], names[cut])


def generated(examples: list[Example], out: Path | None, facts: bool) -> PromptSet:
    """The prompts of generated `examples` with their names, and their facts if `facts`; written
    to `out`/prompts.jsonl when `out` is given (the main process of a run)."""
    if out is not None:
        write_jsonl(examples, out / "prompts.jsonl")
    return PromptSet([e.prompt for e in examples], [e.facts if facts else None for e in examples],
                     [e.name for e in examples])


def heldout(n: int, out: Path | None) -> PromptSet:
    """The first `n` held-out prompts. Their facts are read from the prompt, as in every earlier
    bench, so that its figures compare with theirs."""
    return generated(make_split("heldout", n), out, facts=False)


def probe(n: int, out: Path | None) -> PromptSet:
    """The copy and number probe: `n` task-v6 prompts with held-out names and their given facts."""
    from pdiff.notes.wide import probe_split

    return generated(probe_split(n), out, facts=True)
