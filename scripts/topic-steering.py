#!/usr/bin/env python3
"""Do plan topics steer span content in the bundled PD model?

For held-out prompts: the model's own one-round plan at temperature 0 (reference schedule), then
the same plan with its topics reversed and its lengths kept. For each span, the prompt's facts it
states (checker `fact_stated`). If topics steer, a span's facts move with its topic; if position
steers, they stay at the same position. Prints the counts.

Run from the repository root (about 2 minutes on one CPU core):

    PYTHONPATH=. OMP_NUM_THREADS=1 .venv/bin/python scripts/topic-steering.py

The plan editor's note (pdiff/app/facts.py `plan_editor_note`) says what it found.
"""

from pdiff.events import RoundEnd
from pdiff.loader import load_engine
from pdiff.notes.checker import fact_stated, parse_facts
from pdiff.notes.data import make_split


def span_facts(engine, prompt: str, items: list[tuple[str, int]]) -> list[frozenset]:
    """The facts each span states when the engine fills the plan `items` (topic, units)."""
    markup = "".join(f"<promise>-<topic>{t} {u}</topic>" for t, u in items) + "<|im_end|>"
    config = engine.config(temperature=0.0, plan=markup)
    texts = next(e.span_texts for e in engine.generate(prompt, config) if isinstance(e, RoundEnd))
    facts = parse_facts(prompt)
    return [frozenset(f for f in facts if fact_stated(f, t)) for t in texts]


def main(n_prompts: int = 24) -> None:
    engine = load_engine()
    counts = {"compared": 0, "stay with the position": 0, "follow the topic": 0, "neither": 0}
    for ex in make_split("heldout", n_prompts, seed=9):
        plan = engine.generate_text(ex.prompt, engine.config(temperature=0.0)).plan
        if len(plan) != 1 or len(plan[0]) < 2:
            continue
        items = [(i.topic, i.units) for i in plan[0]]
        topics = [t for t, _ in items][::-1]
        own = span_facts(engine, ex.prompt, items)
        swapped = span_facts(engine, ex.prompt, [(t, u) for t, (_, u) in zip(topics, items)])
        k = len(items)
        for j in range(k):
            mirror = k - 1 - j
            if j == mirror or not (own[j] or own[mirror]):
                continue  # the middle span keeps its topic; a span pair without facts says nothing
            counts["compared"] += 1
            keep, move = len(swapped[j] & own[j]), len(swapped[j] & own[mirror])
            counts["stay with the position" if keep > move else
                   "follow the topic" if move > keep else "neither"] += 1
    print("spans compared: {compared}; facts stay with the position: {stay with the position}; "
          "follow the topic: {follow the topic}; neither: {neither}".format(**counts))


if __name__ == "__main__":
    main()
