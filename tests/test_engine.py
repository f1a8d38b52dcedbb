"""The engine: exact caching, span independence, event order, bad input, user text as text."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from pdiff.config import ConfigError, GenerationConfig
from pdiff.engine import Engine, PromptError
from pdiff.events import DenoiseStep, Finished, Notice, PlanToken, SpansOpened, TextToken
from pdiff.plan import PlanError
from tests.scripted import ScriptedModel

TWO_ROUNDS = ("<promise>-<topic>intro 2</topic><promise>-<topic>body 1</topic><sync/>"
              "<promise>-<topic>end 1</topic><|im_end|>")
ONE_ROUND = "<promise>-<topic>intro 2</topic><promise>-<topic>body 3</topic><|im_end|>"


def greedy(**kw) -> GenerationConfig:
    return GenerationConfig(temperature=0.0, max_new_tokens=120, max_plan_tokens=12, **kw)


@pytest.mark.parametrize("attention", ["sparse", "dense"])
@pytest.mark.parametrize("plan", [ONE_ROUND, TWO_ROUNDS, "<promise>-<topic>intro 2</topic><sync/>"],
                         ids=["one-round", "two-rounds", "sampled-second-round"])
def test_cached_equals_uncached(engine, attention, plan):
    """At temperature 0, cached and uncached runs give identical token ids."""
    cfg = greedy(plan=plan, attention=attention)
    cached = engine.generate_text("Write about Velora.", cfg)
    plain = engine.generate_text("Write about Velora.", dataclasses.replace(cfg, use_cache=False))
    assert cached.token_ids == plain.token_ids
    assert cached.stats.denoise_steps > 0


def _plan_logits(engine, cfg, monkeypatch, skip_refresh=False):
    """Every logits row the plan sampler saw, for a run of `cfg`."""
    seen, sample_one, ingest = [], Engine._sample_one, Engine._ingest

    def record(self, run, logits, bans):  # noqa: ANN001
        seen.append(logits.clone())
        return sample_one(self, run, logits, bans)

    def stale(self, run, ids):  # cache the <sync/> alone: the blocks keep their last-step K/V
        if skip_refresh and run.cache is not None and ids[:1] == [self.tags.sync]:
            run.cache.length = run.layout.length
        return ingest(self, run, ids)

    monkeypatch.setattr(Engine, "_sample_one", record)
    monkeypatch.setattr(Engine, "_ingest", stale)
    engine.generate_text("Write about Velora.", cfg)
    monkeypatch.undo()
    return torch.stack(seen)


def test_sync_refresh_is_exact_and_needed(engine, monkeypatch):
    """After a sync, cached plan logits equal uncached ones; skipping the refresh breaks that."""
    cfg = greedy(plan="<promise>-<topic>intro 2</topic><promise>-<topic>body 1</topic><sync/>")
    cached = _plan_logits(engine, cfg, monkeypatch)
    plain = _plan_logits(engine, dataclasses.replace(cfg, use_cache=False), monkeypatch)
    stale = _plan_logits(engine, cfg, monkeypatch, skip_refresh=True)
    assert (cached - plain).abs().max().item() < 1e-4
    assert (stale - plain).abs().max().item() > 1e-3


@pytest.mark.parametrize("attention,independent", [("sparse", True), ("dense", False)])
def test_span_independence(engine, attention, independent):
    """Sparse: a span's tokens do not change when the other span of its round is shortened.

    The plan (the shared prefix) is the same; the budget cuts the second block to 4 tokens.
    Dense attention is the control: there the first span sees the second and changes.
    """
    def first_span(max_new: int):
        cfg = GenerationConfig(temperature=0.0, plan=ONE_ROUND, attention=attention,
                               max_new_tokens=max_new)
        events = list(engine.generate("Write about Velora.", cfg))
        opened = next(e for e in events if isinstance(e, SpansOpened))
        last = [e for e in events if isinstance(e, DenoiseStep)][-1]
        return [i.length for i in opened.items], last.token_ids[0]

    plan_tokens = 2 * 2 + len(engine.tok.encode_plain("intro 2")) + len(engine.tok.encode_plain("body 3"))
    lengths_full, span_full = first_span(120)
    lengths_cut, span_cut = first_span(plan_tokens + 20 + 2 + 4 + 2 + 1)
    assert lengths_full == [20, 30] and lengths_cut == [20, 4]
    assert (span_full == span_cut) is independent


def test_event_order_and_single_finish(engine):
    """Plan tokens, then spans-opened, then its denoise steps; one Finished, last; no mask left."""
    events = list(engine.generate("Write about Velora.", greedy(plan=TWO_ROUNDS)))
    assert sum(isinstance(e, Finished) for e in events) == 1 and isinstance(events[-1], Finished)
    for rnd in (0, 1):
        idx = lambda kind, r=rnd: [i for i, e in enumerate(events) if isinstance(e, kind) and e.round == r]
        assert max(idx(PlanToken)) < min(idx(SpansOpened)) < min(idx(DenoiseStep))
    final = events[-1]
    assert engine.tags.mask not in final.token_ids and "<|mask|>" not in final.text


def test_same_seed_same_events(engine):
    """The same seed gives the same events (sampling at temperature 1)."""
    cfg = GenerationConfig(temperature=1.0, top_p=0.9, seed=7, plan=ONE_ROUND, max_new_tokens=80)
    strip = lambda evs: [e for e in evs if not isinstance(e, Finished)]
    a, b = (strip(engine.generate("Write.", cfg)) for _ in range(2))
    c = strip(engine.generate("Write.", dataclasses.replace(cfg, seed=8)))
    assert a == b and a != c


def test_reference_schedule_commits_one_per_step_at_ratio_one(engine):
    """steps_ratio 1.0, reference schedule: every unfinished span commits exactly one token a step."""
    events = list(engine.generate("Write.", greedy(plan=ONE_ROUND)))
    steps = [e for e in events if isinstance(e, DenoiseStep)]
    assert len(steps) == 30
    for e in steps:
        for span, committed in enumerate(e.committed):
            assert len(committed) == (1 if e.step < (20, 30)[span] else 0)


@pytest.mark.parametrize("schedule", ["reference", "paper", "adaptive"])
def test_steps_ratio_above_one_changes_nothing(engine, schedule):
    """Every step commits at least one token per unfinished span, so a steps_ratio above 1
    gives the same run as 1 (why the page's slider stops at 1)."""
    def ids(ratio):
        cfg = greedy(plan=ONE_ROUND, steps_ratio=ratio, schedule=schedule, threshold=0.9)
        return engine.generate_text("Write.", cfg).token_ids

    assert ids(2.0) == ids(1.0) == ids(4.0)


def test_the_reference_schedule_reads_no_threshold(engine):
    """The threshold is a knob of the paper and adaptive schedules only: reference runs that
    differ in nothing but it give the same events."""
    strip = lambda evs: [e for e in evs if not isinstance(e, Finished)]  # Finished holds timings
    runs = [strip(engine.generate("Write.", greedy(plan=ONE_ROUND, steps_ratio=0.5, threshold=t)))
            for t in (0.0, 0.9)]
    assert runs[0] == runs[1] and any(isinstance(e, DenoiseStep) for e in runs[0])


def test_adaptive_threshold_zero_is_one_step(engine):
    """The adaptive rule at threshold 0 finishes every span in one step."""
    events = list(engine.generate("Write.", greedy(plan=ONE_ROUND, schedule="adaptive", threshold=0.0)))
    assert sum(isinstance(e, DenoiseStep) for e in events) == 1


def test_paper_threshold_never_finishes_early(engine):
    """The paper's rule with a threshold takes at least its scheduled steps."""
    for tau in (0.0, 0.5, 0.99):
        cfg = greedy(plan=ONE_ROUND, schedule="paper", threshold=tau, steps_ratio=0.5)
        events = list(engine.generate("Write.", cfg))
        opened = next(e for e in events if isinstance(e, SpansOpened))
        assert sum(isinstance(e, DenoiseStep) for e in events) >= opened.steps == 15


def test_stats_count_every_forward(engine):
    """forward passes = plan tokens + denoise steps + prefill-only forwards, in every mode."""
    for cfg in (greedy(), greedy(plan=TWO_ROUNDS), greedy(mode="autoregressive"), greedy(mode="diffusion")):
        s = engine.generate_text("Write about Velora.", cfg).stats
        assert s.forward_passes == s.plan_tokens + s.denoise_steps + s.prefill_forwards == s.critical_path
        assert s.total_seconds > 0 and s.generated_tokens <= 120


def test_budget_never_exceeded_and_told(engine):
    """Spans that would pass max_new_tokens are cut before they open, and the user is told."""
    cfg = GenerationConfig(temperature=0.0, plan=ONE_ROUND, max_new_tokens=35)
    events = list(engine.generate("Write.", cfg))
    assert len(events[-1].token_ids) <= 35
    assert any(isinstance(e, Notice) and e.kind == "budget" for e in events)


@pytest.mark.parametrize("prompt", ["", "   \n"])
def test_empty_prompt_is_refused(engine, prompt):
    """An empty prompt is a clear error before any event."""
    with pytest.raises(PromptError, match="empty"):
        next(engine.generate(prompt, greedy()))


def test_prompt_longer_than_context_is_refused(engine):
    """A prompt over the model's context is refused with both numbers."""
    with pytest.raises(PromptError, match="at most 511"):
        next(engine.generate("Velora lanterns " * 400, greedy()))


@pytest.mark.parametrize("knob,value", [
    ("steps_ratio", 0.0), ("steps_ratio", 7), ("threshold", 1.5), ("temperature", -1.0),
    ("top_p", 0.0), ("max_new_tokens", 0), ("length_scale", 2.5), ("mode", "magic"),
    ("steps_ratio", float("nan")), ("seed", "x"), ("attention", "full"), ("use_cache", "yes"),
    ("schedule", "off"), ("threshold", None),
])
def test_out_of_range_knob_names_value(knob, value):
    """An out-of-range or mistyped knob is refused with its name and value."""
    with pytest.raises(ConfigError, match=knob):
        GenerationConfig(**{knob: value})


@pytest.mark.parametrize("plan", [
    "intro 3", "<promise>-<topic>intro</topic><|im_end|>", "<promise>-<topic>intro 2</topic>",
    "<promise>-<topic>intro 2<|im_end|>", "<sync/>", "<promise>-<topic>a 0</topic><|im_end|>",
])
def test_malformed_user_plan_is_refused(engine, plan):
    """A malformed user plan is a PlanError, before any event."""
    with pytest.raises(PlanError):
        next(engine.generate("Write.", greedy(plan=plan)))


@pytest.mark.parametrize("tag", ["<async>", "<sync/>", "<|mask|>", "</async>", "<|im_end|>",
                                 "<promise>-<topic>", "[PAD]"])
def test_user_text_is_never_a_tag(engine, tag):
    """A tag typed in the prompt is tokenized as plain characters and decodes back to itself."""
    prompt = f"Say {tag} twice {tag}"
    ids = engine.tok.encode_prompt(prompt)
    user = engine.tok.encode_plain(prompt)
    assert not set(user) & engine.tags.all()
    assert engine.tok.decode(user) == prompt
    tags_in = lambda text: [t for t in engine.tok.encode_prompt(text) if t in engine.tags.all()]
    assert tags_in(prompt) == tags_in("Say it twice")  # only the template's own markers
    assert prompt in engine.tok.decode(ids)


def test_tag_in_plan_topic_stays_text(engine):
    """A topic holding tags is encoded as text: the plan keeps its structure."""
    plan = "<promise>-<topic>a <sync/> b <|im_end|> 2</topic><|im_end|>"
    events = list(engine.generate("Write.", greedy(plan=plan)))
    assert [len(e.items) for e in events if isinstance(e, SpansOpened)] == [1]
    forced = [e.token_id for e in events if isinstance(e, PlanToken)]
    assert forced.count(engine.tags.sync) == 0 and forced.count(engine.tags.im_end) == 1


def _scripted(engine, script_text: str, poison=None):
    prompt_ids = engine.tok.encode_prompt("Write.")
    script = engine.tok.encode_markup(script_text)
    fill = engine.tok.encode_plain(" lantern")[0]
    model = ScriptedModel(engine.model.config.vocab_size, len(prompt_ids), script, fill, poison)
    return Engine(model, engine.tok), fill


def test_scripted_plan_opens_its_spans(engine):
    """The engine opens exactly the spans the model's plan promises, lengths times length_scale."""
    plan = "<promise>-<topic>alpha 2</topic><promise>-<topic>beta 1</topic><|im_end|>"
    fake, fill = _scripted(engine, plan)
    events = list(fake.generate("Write.", GenerationConfig(temperature=0.0, length_scale=3)))
    opened = next(e for e in events if isinstance(e, SpansOpened))
    assert [(i.topic, i.length) for i in opened.items] == [("alpha", 6), ("beta", 3)]
    assert set(events[-1].token_ids) & {fill}


def test_no_plan_falls_back_to_text(engine):
    """A model that writes text instead of a plan is told and answered autoregressively."""
    fake, _ = _scripted(engine, "just words<sync/>")
    events = list(fake.generate("Write.", greedy()))
    assert any(isinstance(e, Notice) and e.kind == "no_plan" for e in events)
    assert any(isinstance(e, TextToken) for e in events) and events[-1].text.startswith("just words")


@pytest.mark.parametrize("poison", ["nan", "inf"])
def test_broken_logits_do_not_crash(engine, poison):
    """NaN or inf logits still give a finished run, with no mask in the text."""
    fake, _ = _scripted(engine, "<promise>-<topic>alpha 2</topic><|im_end|>", poison)
    final = list(fake.generate("Write.", greedy()))[-1]
    assert isinstance(final, Finished) and engine.tags.mask not in final.token_ids


def test_closing_the_stream_releases_the_cache(engine):
    """A consumer that stops early closes the generator, and the run's cache is dropped."""
    import gc
    import weakref

    from pdiff.model import KVCache

    stream = engine.generate("Write.", greedy(plan=ONE_ROUND))
    next(stream), next(stream)
    frame = stream.gi_frame
    cache = weakref.ref(frame.f_locals["run"].cache)
    assert isinstance(cache(), KVCache)
    stream.close()
    gc.collect()
    assert cache() is None


def test_interleaved_runs_count_their_own_forwards(engine):
    """Two runs streamed in turn (as concurrent requests are) each count only their own forwards,
    and give the same tokens as when run alone."""
    cfg = greedy(plan=TWO_ROUNDS)
    alone = engine.generate_text("Write about Velora.", cfg)
    a, b = engine.generate("Write about Velora.", cfg), engine.generate("Describe Tamsk.", cfg)
    last = {}
    for pair in zip(a, b):
        last["a"], last["b"] = pair
    for rest in a:
        last["a"] = rest
    assert last["a"].stats.forward_passes == alone.stats.forward_passes
    assert last["a"].token_ids == alone.token_ids
    assert last["b"].stats.forward_passes == engine.generate_text("Describe Tamsk.", cfg).stats.forward_passes


def test_ar_mode_reports_token_confidence(engine):
    """The AR baseline reports the mean probability of the tokens it wrote."""
    s = engine.generate_text("Write.", greedy(mode="autoregressive")).stats
    assert s.mean_confidence is not None and 0 < s.mean_confidence <= 1


def test_steps_carry_the_top_candidates_of_the_slots_they_commit(engine):
    """Each denoise step lists, for exactly the slots it committed, the model's 5 most likely
    tokens, most likely first, with the softmax of the scripted model's known logits (span tags
    banned) at that slot: the fill token, its runner-up, then three of the tied rest."""
    plan = "<promise>-<topic>alpha 2</topic><promise>-<topic>beta 1</topic><|im_end|>"
    fake, fill = _scripted(engine, plan)
    events = list(fake.generate("Write.", GenerationConfig(temperature=0.0, length_scale=3)))
    final = events[-1]
    starts = [len(final.prompt_ids) + i + 1 for i, t in enumerate(final.token_ids) if t == engine.tags.async_]
    steps = [e for e in events if isinstance(e, DenoiseStep)]
    assert steps and sum(len(c) for e in steps for c in e.committed) == 6 + 3
    for e in steps:
        assert [len(t) for t in e.top] == [len(c) for c in e.committed]
        for s, slots in enumerate(e.committed):
            for slot, candidates in zip(slots, e.top[s], strict=True):
                pos = starts[s] + slot  # the slot's sequence position; Dream reads row pos - 1
                row = fake.model(None, torch.tensor([pos - 1]), None)[0, 0]
                probs = torch.softmax(row.index_fill(0, fake._span_bans, float("-inf")), -1)
                want = probs.topk(5).values.tolist()
                assert [c.prob for c in candidates] == pytest.approx(want, abs=1e-4)
                assert [c.token_id for c in candidates[:2]] == [fill, fill + 1]
                ids = [c.token_id for c in candidates]
                assert len(set(ids)) == 5 and all(probs[i] == probs[ids[2]] for i in ids[2:])
                assert all(c.text == engine.tok.piece(c.token_id) for c in candidates)
