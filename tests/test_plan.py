"""Plan parsing and rendering: robust to malformed items, and clean text as the spec says."""

from __future__ import annotations

import pytest

from pdiff.plan import PlanRound, join_spans, parse_item, parse_plan_ids, parse_user_plan, render_plan
from pdiff.tags import TagIds

TAGS = TagIds(promise=1, topic_end=2, async_=3, async_end=4, sync=5, pad=6, im_end=7, mask=8)
WORDS = {10: "intro", 11: " 4", 12: "top 10 tips", 13: " 3", 14: " 99999999999999", 15: "no digits"}


def decode(ids):
    return "".join(WORDS[i] for i in ids)


@pytest.mark.parametrize("body,topic,units", [
    ("introduction 4", "introduction", 4),
    (" Billy Joel description 4", "Billy Joel description", 4),
    ("top 10 tips 3", "top 10 tips", 3),  # digits inside the topic: the trailing integer counts
    ("step 2 of 12", "step 2 of", 12),
])
def test_trailing_integer_is_the_length(body, topic, units):
    """N is the trailing integer before </topic>, not the first digit anywhere."""
    item, problem = parse_item(body, max_units=20)
    assert (item.topic, item.units, problem) == (topic, units, None)


@pytest.mark.parametrize("body,fragment", [
    ("no digits here", "no length"), ("intro 0", "0 tokens"), ("", "no length"),
])
def test_malformed_item_is_reported_not_raised(body, fragment):
    """An item without a usable length is skipped with a problem, never an exception."""
    item, problem = parse_item(body, max_units=20)
    assert item is None and fragment in problem


def test_huge_length_is_clamped_and_reported():
    """A huge N is clamped to the configured maximum, and the clamp is reported."""
    item, problem = parse_item("intro 99999999999999999999", max_units=20)
    assert item.units == 20 and "clamped" in problem


def test_plan_ids_split_into_items_and_problems():
    """Ids with good, digit-topic, huge and digit-less items give items plus one problem each."""
    ids = [1, 10, 11, 2, 1, 12, 13, 2, 1, 10, 14, 2, 1, 15, 2]
    items, problems = parse_plan_ids(ids, TAGS, decode, max_units=20)
    assert [(i.topic, i.units) for i in items] == [("intro", 4), ("top 10 tips", 3), ("intro", 20)]
    assert len(problems) == 2


def test_empty_plan_gives_no_items_and_no_crash():
    """An empty plan parses to nothing."""
    assert parse_plan_ids([], TAGS, decode, max_units=20) == ([], [])


def test_user_plan_round_trips():
    """render_plan(parse_user_plan(x)) == x for a well-formed two-round plan."""
    text = ("<promise>-<topic>introduction 4</topic><promise>-<topic>materials 7</topic><sync/>"
            "<promise>-<topic>summary 2</topic><|im_end|>")
    rounds = parse_user_plan(text, max_units=20)
    assert rounds == (PlanRound((("introduction", 4), ("materials", 7)), "sync"),
                      PlanRound((("summary", 2),), "end"))
    assert render_plan(rounds) == text


def test_user_plan_tags_inside_a_topic_stay_topic_text():
    """Inside an item everything up to </topic> is topic text: it cannot end the round."""
    rounds = parse_user_plan("<promise>-<topic>a <sync/> b 2</topic><|im_end|>", max_units=20)
    assert rounds == (PlanRound((("a <sync/> b", 2),), "end"),)


def test_clean_text_joins_spans_with_space_and_list_newlines():
    """Spans join with one space; a span that starts with a list number starts a new line."""
    assert join_spans([" Intro text. ", "1. First", "2) Second", "", "Done."]) == \
        "Intro text.\n1. First\n2) Second Done."
