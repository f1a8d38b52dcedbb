"""Spec of `pdiff.app.facts`: the scope line, the notice for a prompt without facts, the per-fact
marks beside an answer, and the quality row of the stats; then the same through DemoApp on the
real bundled checkpoints (planned and AR)."""

from __future__ import annotations

import re

import pytest

from pdiff.app.facts import (
    NO_FACTS,
    SYMBOLS,
    WORDS,
    Judge,
    fact_marks_html,
    halving,
    plan_editor_note,
    scope_line,
)
from pdiff.app.fold import RunView
from pdiff.app.handlers import DemoApp
from pdiff.app.inputs import default_schedule
from pdiff.app.settings import QUALITY_LABELS, RELEASED_PD, Models, settings_from_env
from pdiff.app.view import stats_html
from pdiff.config import Knobs
from pdiff.events import Finished, Stats
from pdiff.notes.checker import MARKS, fact_results, invented_facts, parse_facts, score
from pdiff.notes.data import make_split

CHECKER = Judge("checker", QUALITY_LABELS["checker"])
CONFIDENCE = Judge("confidence", QUALITY_LABELS["confidence"])
PROMPT = "Tell me about the city Lagil. Facts: country: Dregani; climate: hot; population: 4800."


def finished_view(text: str, mode: str = "planned") -> RunView:
    view = RunView()
    stats = Stats(mode, 5, 0.1, 0.2, 1.0, 9, 0, 4, 5, 1, 2, 20, 9, 20 / 9, 0.5)
    view.apply(Finished(text, (), (), (), stats))
    return view


def test_scope_line_of_the_bundled_model_says_its_task_and_where_open_questions_go():
    """The bundled line names the task's four kinds of subject and links a released 7B model."""
    line = scope_line("bundled", "bundled pd-notes")
    assert "made-up cities, products, people and animals" in line
    assert f"](https://huggingface.co/{RELEASED_PD[0]})" in line and "GPU" in line


def test_scope_line_of_a_released_model_has_no_notes_warning():
    """A released 7B model gets its own line: open instructions, no notes-only wording."""
    line = scope_line("released", RELEASED_PD[0])
    assert RELEASED_PD[0] in line and "open instructions" in line
    assert "notes" not in line and "made-up" not in line


@pytest.mark.parametrize("prompt", ["Explain how tides work.", "hello", "",
                                    "What is the capital of France? Answer in one sentence."])
def test_a_checker_model_warns_when_no_facts_can_be_read(prompt):
    """No facts in the prompt: one notice that the answer is likely invented, and why."""
    [notice] = CHECKER.notices(prompt)
    assert notice.kind == NO_FACTS and "no facts" in notice.message and "invented" in notice.message


def test_no_warning_with_facts_or_without_a_checker():
    """Facts in the prompt, or a model judged by confidence: no notice."""
    assert CHECKER.notices(PROMPT) == [] and CONFIDENCE.notices("Explain how tides work.") == []


def test_marks_list_every_fact_with_its_mark_and_counts():
    """One item per fact of the prompt, classed by its checker mark; the head counts them."""
    answer = "Lagil lies in the country of Dregani. It has a rainy climate for most of the year."
    html = fact_marks_html(PROMPT, answer)
    results = fact_results(PROMPT, answer)
    classes = re.findall(r'class="pd-fact pd-fact-(\w+)"', html)
    assert classes == [r.mark for r in results] == ["correct", "wrong", "missing"]
    assert "1 of 3 stated correctly, 1 wrongly, 0 not cleanly stated, 1 missing, 0 not in your notes" in html
    assert "the answer says rainy" in html


def test_marks_add_a_line_for_each_fact_not_in_the_notes():
    """After the prompt's facts, one line per fact the answer adds, marked "not in your notes"
    with its own symbol, its key and value and the sentence that says it, all escaped; the head
    counts them."""
    added = ["Lagil is married to Vuvelu.", "Its motto is <i>Dovra</i>."]
    answer = ("Lagil lies in the country of Dregani. It has a hot climate for most of the year. "
              "It has a population of 4800. " + " ".join(added))
    html = fact_marks_html(PROMPT, answer)
    invented = invented_facts(PROMPT, answer)
    assert [i.sentence for i in invented] == added  # the premise: the checker finds both
    classes = re.findall(r'class="pd-fact pd-fact-(\w+)"', html)
    assert classes == [r.mark for r in fact_results(PROMPT, answer)] + ["invented", "invented"]
    assert "3 of 3 stated correctly, 0 wrongly, 0 not cleanly stated, 0 missing, 2 not in your notes" in html
    lines = re.findall(r'<li class="pd-fact pd-fact-invented" title="not in your notes">(.*?)</li>', html)
    assert len(lines) == 2 and all(SYMBOLS["invented"] in line for line in lines)
    assert SYMBOLS["invented"] not in SYMBOLS["correct"] + SYMBOLS["wrong"] + SYMBOLS["missing"]
    assert "<b>partner</b> Vuvelu" in lines[0] and "Lagil is married to Vuvelu." in lines[0]
    assert "<i>" not in html and "<b>motto</b> &lt;i&gt;Dovra&lt;/i&gt;" in lines[1]


def test_a_value_in_a_broken_sentence_has_its_own_mark():
    """A fact stated only inside a broken sentence (the issue's "It w made mostlys about 850
    grams.") gets its own line: the "unclear" class, its title and ASCII symbol (no other mark's),
    the flaw and the sentence, escaped; the head counts it apart from the correct ones, while the
    score still counts the fact as stated."""
    prompt = "Tell me about the Vark lamp. Facts: weight: 850 grams; colour: red; material: steel."
    sentence = "It w made mostlys about 850 grams <i>."
    answer = f"{sentence} The Vark lamp is red in colour."
    results = fact_results(prompt, answer)
    marks = [r.mark for r in results]
    assert "unclear" in marks  # the premise: the checker finds the broken sentence
    html = fact_marks_html(prompt, answer)
    assert re.findall(r'class="pd-fact pd-fact-(\w+)"', html) == marks
    counts = {m: marks.count(m) for m in MARKS}
    assert (f"{counts['correct']} of {len(marks)} stated correctly, {counts['wrong']} wrongly, "
            f"{counts['unclear']} not cleanly stated, {counts['missing']} missing") in html
    [line] = re.findall(rf'<li class="pd-fact pd-fact-unclear" title="{WORDS["unclear"]}">(.*?)</li>', html)
    unclear = results[marks.index("unclear")]
    assert SYMBOLS["unclear"] in line and SYMBOLS["unclear"].isascii()
    assert all(SYMBOLS["unclear"] != SYMBOLS[m] for m in SYMBOLS if m != "unclear")
    assert unclear.why in line.replace("&#x27;", "'") and "<i>" not in html and "&lt;i&gt;" in line
    assert score(prompt, answer).facts_correct == counts["correct"] + counts["unclear"]


def test_every_mark_has_a_symbol_and_words():
    """Each checker mark (and "invented") has its own symbol and its own title words."""
    assert set(SYMBOLS) == set(WORDS) == {*MARKS, "invented"}
    assert len(set(SYMBOLS.values())) == len(SYMBOLS) and len(set(WORDS.values())) == len(WORDS)


def test_a_halved_score_names_its_format_problem_not_an_invented_fact():
    """An answer with an invented fact and a repeated sentence: the halving names the repeat."""
    repeated = "It is a quiet place with many old streets."
    answer = f"Lagil lies in the country of Dregani. Its motto is Dovra. {repeated} {repeated}"
    scored = score(PROMPT, answer)
    assert scored.invented == 1 and not scored.format_ok  # the premise
    assert halving(scored).endswith("halved for: repeated sentence")


def test_marks_escape_the_prompt_and_the_answer():
    """Text from the prompt and the answer is escaped, never markup."""
    prompt = "Tell me about Aro. Facts: motto: <b>x</b>; nickname: Tom."
    html = fact_marks_html(prompt, "Its nickname is <script>alert(1)</script>.")
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_marks_wait_for_the_finished_answer_and_need_a_checker():
    """Nothing before the run finishes, nothing for a model without a checker or a fact."""
    assert CHECKER.marks_html(PROMPT, RunView()) == ""
    assert CHECKER.marks_html(PROMPT, None) == ""
    assert CONFIDENCE.marks_html(PROMPT, finished_view("Dregani")) == ""
    assert CHECKER.marks_html("Explain how tides work.", finished_view("Tides.")) == ""


@pytest.mark.parametrize("judge", [CHECKER, CONFIDENCE])
def test_quality_row_is_the_named_signal_of_the_run(judge):
    """The stats' quality row names the signal and shows the run's value of it (the checker's
    score for the bundled models, the mean commit confidence otherwise); first in the stats."""
    view = finished_view("Lagil lies in the country of Dregani.")
    name, value = judge.quality_row(PROMPT, view)
    expected = score(PROMPT, view.finished.text).value if judge is CHECKER else 0.5
    assert name == f"quality · {judge.label}" and value == f"{expected:.2f}"
    html = stats_html(view, quality=(name, value))
    assert html.index(name) < html.index("mode")
    assert judge.quality_row(PROMPT, RunView()) is None


# --- through DemoApp, on the real bundled checkpoints ------------------------------------------


@pytest.fixture(scope="module")
def bundled_app():
    from pdiff.loader import BUNDLED_AR, load_engine

    settings = settings_from_env({"PDIFF_MAX_NEW_TOKENS": "256"}, cuda_available=False)
    models = Models(load_engine(), load_engine(BUNDLED_AR), "bundled", "bundled", str(BUNDLED_AR))
    return DemoApp(models, settings, sleep=lambda s: None)


def knobs(app: DemoApp) -> dict:
    """The page's starting knobs for the loaded model: its default schedule and length scale."""
    pd = app.models.pd
    return dict(default_schedule(pd), unmask="entropy", temperature=0.2, top_p=0.95, seed=0,
                length_scale=pd.length_scale, attention="sparse", use_cache=True, max_new_tokens=256)


def test_bundled_runs_mark_every_fact_for_planned_and_ar(bundled_app):
    """A bundled run and its AR baseline: each answer's marks list every fact of the prompt, as
    the checker marks that very answer, then each fact it adds, and each stats panel carries its
    checker score."""
    prompt = make_split("heldout", 1, seed=4)[0].prompt
    n = len(parse_facts(prompt))
    final = list(bundled_app.generate(prompt, Knobs.named(knobs(bundled_app)), compare_ar=True))[-1]
    for facts, answer, stats in ((final.facts, final.answer, final.stats),
                                 (final.ar_facts, final.ar_answer, final.ar_stats)):
        added = len(invented_facts(prompt, answer))
        assert answer and len(re.findall(r'class="pd-fact ', facts)) == n + added
        marks = re.findall(r'class="pd-fact pd-fact-(\w+)"', facts)
        assert marks == [r.mark for r in fact_results(prompt, answer)] + ["invented"] * added
        assert f"{score(prompt, answer).value:.2f}" in stats and "quality · checker" in stats
    assert "likely invented" not in final.notices


def test_bundled_run_without_facts_still_runs_and_says_so(bundled_app):
    """An off-topic prompt is answered, with the notice that the answer is likely invented."""
    frames = list(bundled_app.generate("Explain how tides work.", Knobs.named(knobs(bundled_app))))
    final = frames[-1]
    assert final.answer.strip() and final.facts == ""
    assert "likely invented" in final.notices and "no facts" in final.notices
    assert "likely invented" in frames[0].notices  # said from the first frame on


def test_plan_editor_note_only_for_the_measured_model():
    """The bundled model's plan editor says topics do not steer it; other models get no claim."""
    assert "not by topic" in plan_editor_note("bundled") and "topic-steering" in plan_editor_note("bundled")
    assert plan_editor_note("released") == plan_editor_note("folder") == ""
