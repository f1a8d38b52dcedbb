"""What the loaded model can do, and how well each answer did: the scope line, the notice for a
prompt without facts, the per-fact marks beside an answer and the quality row of the stats.

A `Judge` is how a model's answers are judged: the bundled models by the notes checker
(`pdiff.notes.checker`: fact accuracy, each fact marked correct, not cleanly stated, wrong or
missing, and each fact the answer adds that the notes do not give), any other model by the
benchmark's named signal alone (mean commit confidence: no per-fact marks). Everything here is
pure: markdown, escaped HTML and `Notice`s from plain values. This module knows nothing of
gradio, models or engines.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from pdiff.app.fold import RunView
from pdiff.app.session import quality_of
from pdiff.app.settings import RELEASED_PD
from pdiff.events import Notice
from pdiff.notes.checker import INVENTED, MARKS, Score, fact_results, invented_facts, parse_facts, score

RELEASED_HUB = "https://huggingface.co/"  # a released checkpoint's page: this prefix + its id
README_7B = "Run it on a released 7B checkpoint (GPU)"  # the README section for open questions
# The mark's shape, so colour is not the only cue; "unclear": stated only in a broken sentence;
# "invented": a fact the answer adds.
SYMBOLS = {"correct": "✓", "unclear": "~", "wrong": "✗", "missing": "–", "invented": "+"}
WORDS = {"correct": "stated correctly", "unclear": "not cleanly stated", "wrong": "stated wrongly",
         "missing": "missing", "invented": INVENTED}
NO_FACTS = "likely_invented"  # the notice kind for a bundled-model prompt without facts


def scope_line(kind: str, display_name: str, released_id: str = RELEASED_PD[0]) -> str:
    """One markdown line under the title: what the loaded model is and what it can do."""
    if kind == "bundled":
        return (f"**What this model can do:** `{display_name}` is a tiny CPU model that writes short "
                "texts from notes about made-up cities, products, people and animals (give it facts "
                "such as `population: 4200`); each answer's facts are checked below it. For open "
                f"questions, run a released 7B checkpoint such as [{released_id}]({RELEASED_HUB}"
                f"{released_id}) on a GPU (README, \"{README_7B}\").")
    if kind == "released":
        return (f"**What this model can do:** `{display_name}` is a released 7B Planned Diffusion "
                "checkpoint (Dream 7B, instruction-tuned): it answers open instructions. There is no "
                "checker for open answers; quality is the mean commit confidence.")
    return (f"**What this model can do:** `{display_name}` is the operator's own checkpoint; this "
            "page does not know its task. Quality is the mean commit confidence.")


def plan_editor_note(kind: str) -> str:
    """What the plan editor's topics do for this model, as measured by scripts/topic-steering.py
    on the bundled model; "" for other models (not measured)."""
    if kind != "bundled":
        return ""
    return ("**Topics do not steer this model.** It places facts by span order, not by topic: with "
            "the topics of its own plans reversed (lengths kept), the facts stay at their span's "
            "position (measured with `scripts/topic-steering.py`). Lengths and the number of spans "
            "do change the answer.")


@dataclass(frozen=True)
class Judge:
    """How the loaded model's answers are judged: "checker" (bundled) or "confidence"."""

    kind: str  # Models.quality_kind: "checker" | "confidence"
    label: str  # the named signal, as the chart and the stats call it

    def notices(self, prompt: str) -> list[Notice]:
        """A run's notice before it starts: a checker model given a prompt without facts."""
        if self.kind != "checker" or parse_facts(prompt):
            return []
        return [Notice(NO_FACTS, "no facts could be read from this prompt (such as \"population: "
                       "4200\" or \"It was founded in 1843.\"), and the bundled model only learned "
                       "to write texts from notes, so this answer is likely invented. Add facts, "
                       "or see the line under the title for open questions.")]

    def quality_row(self, prompt: str, view: RunView) -> tuple[str, str] | None:
        """("quality · <signal>", value) for a finished run's stats; None before it finishes."""
        if view.finished is None:
            return None
        value = quality_of(self.kind, prompt, view.finished)
        if value is None:
            return (f"quality · {self.label}", "–")
        halved = halving(score(prompt, view.finished.text)) if self.kind == "checker" else ""
        return (f"quality · {self.label}", f"{value:.2f}{halved and f' ({halved})'}")

    def marks_html(self, prompt: str, view: RunView | None) -> str:
        """The prompt's facts, each marked as the finished answer states it; "" otherwise."""
        if self.kind != "checker" or view is None or view.finished is None:
            return ""
        return fact_marks_html(prompt, view.finished.text)


def halving(scored: Score) -> str:
    """Why a checker score is half its fact accuracy ("" when it is not): the format's first
    problem, so "8 of 12 stated correctly" beside 0.33 reads as what it is."""
    if scored.format_ok:
        return ""
    problems = [p for p in scored.problems if not p.startswith(("missing fact", f"{INVENTED}:"))]
    reason = problems[0].split(":")[0] if problems else "the format is not clean"
    return f"{scored.fact_accuracy:.2f} of the facts, halved for: {reason}"


def fact_marks_html(prompt: str, answer: str) -> str:
    """Every fact of the prompt with its mark (correct, not cleanly stated with its broken sentence
    and what breaks it, wrong with the value said, missing), then each fact the answer adds that
    the notes do not give, with the sentence that says it."""
    results = fact_results(prompt, answer)
    if not results:
        return ""
    invented = invented_facts(prompt, answer)
    counts = {m: sum(r.mark == m for r in results) for m in MARKS}
    head = (f"facts of the prompt: {counts['correct']} of {len(results)} stated correctly, "
            f"{counts['wrong']} wrongly, {counts['unclear']} {WORDS['unclear']}, "
            f"{counts['missing']} missing, {len(invented)} {INVENTED}")
    scored = score(prompt, answer)
    halved = halving(scored)
    if halved:
        head += f"; score {scored.value:.2f}: {halved}"
    items = []
    for r in results:
        if r.mark == "unclear":
            note = f"only in a broken sentence, {r.why}: “{r.said}”"
        else:
            note = f"the answer says {r.said}" if r.said else ""
        said = f' <span class="pd-fact-said">({escape(note)})</span>' if note else ""
        items.append(_mark_item(r.mark, r.fact.key, r.fact.value, said))
    for i in invented:
        said = f' <span class="pd-fact-said">({INVENTED}: “{escape(i.sentence)}”)</span>'
        items.append(_mark_item("invented", i.key, i.value, said))
    return (f'<div class="pd pd-facts"><div class="pd-facts-head">{escape(head)}</div>'
            f'<ul class="pd-fact-list">{"".join(items)}</ul></div>')


def _mark_item(mark: str, key: str, value: str, said: str) -> str:
    """One line of the marks: its symbol, the key and value (escaped here), and `said` (HTML)."""
    return (f'<li class="pd-fact pd-fact-{mark}" title="{WORDS[mark]}">'
            f'<span class="pd-fact-mark">{SYMBOLS[mark]}</span> <b>{escape(key)}</b> '
            f'{escape(value)}{said}</li>')
