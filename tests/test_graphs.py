"""The static-shape path of pdiff.graphs, on the CPU: buckets, padding and masks, uncaptured.

On CUDA the same path is captured as CUDA graphs (tests/test_cuda.py checks the ids there);
here it runs op by op, so every check below is about shapes, padding and masks, which is what a
capture freezes. The reference is the engine's dynamic path: the same model, eager.
"""

from __future__ import annotations

import pytest
import torch

from pdiff.config import GenerationConfig
from pdiff.graphs import Graphs, StaticCache
from pdiff.loader import load_engine
from pdiff.model import PRESETS, DreamModel, KVCache
from tests.test_engine import ONE_ROUND, TWO_ROUNDS

PROMPT = "Write about Velora."
SCHEDULES = ["reference", "paper", "adaptive"]


@pytest.fixture(scope="module")
def pair(tiny_ckpt):
    """The tiny checkpoint twice: eager (as on the CPU by default), and on static shapes."""
    return load_engine(tiny_ckpt), load_engine(tiny_ckpt, graphs=True)


@pytest.fixture()
def model():
    torch.manual_seed(0)
    m = DreamModel(PRESETS["tiny"]).eval()
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.2)
    return m


def greedy(**knobs) -> GenerationConfig:
    return GenerationConfig(**{"temperature": 0.0, "max_new_tokens": 120, "max_plan_tokens": 12,
                               "threshold": 0.5, **knobs})


@pytest.mark.parametrize("width,bucket", [(1, 1), (2, 4), (4, 4), (5, 16), (198, 200), (264, 264),
                                          (265, None)])
def test_a_forward_runs_in_the_smallest_bucket_that_holds_it(model, width, bucket):
    """A forward of T rows pads to the smallest bucket of at least T; past the widest, none."""
    assert Graphs(model).bucket(width) == bucket


def _prefix(model, cache, n: int, generator) -> None:
    ids = torch.randint(0, 500, (1, n), generator=generator)
    model(ids, torch.arange(n), torch.ones(n, n, dtype=torch.bool).tril(), cache, 0, commit=True)


@pytest.mark.parametrize("t", [1, 3, 16, 20])
def test_padded_masked_forward_gives_the_dynamic_logits(model, t):
    """After the same cached prefix, a forward of t rows with a block-sparse visibility gives
    the dynamic path's logits (fp32, < 1e-5) and ids on the static path: padding and the
    mask over the whole cache change nothing."""
    g = Graphs(model, max_len=64)
    cache, plain = g.new_cache(64), model.new_cache(64)
    assert isinstance(cache, StaticCache)
    ids = torch.randint(0, 500, (1, t), generator=torch.Generator().manual_seed(t))
    pos = torch.arange(30, 30 + t)
    vis = torch.ones(t, 30 + t, dtype=torch.bool)
    vis[: t // 2, 30 + t // 2:] = False  # two blocks that do not see each other
    vis[t // 2:, 30: 30 + t // 2] = False
    with torch.inference_mode():
        for c in (cache, plain):
            _prefix(model, c, 30, torch.Generator().manual_seed(1))
        got = g(ids, pos, vis, cache, 30)[0]
        want = model(ids, pos, vis, plain, 30)[0]
    assert g.counts == {"static": 1, "eager": 0}
    assert (got - want).abs().max().item() < 1e-5
    assert torch.equal(got.argmax(-1), want.argmax(-1))


def test_padding_writes_only_scratch_slots(model):
    """Padded rows write their keys past the committed slots; every slot a run owns keeps its
    value, and a commit advances the cache's length by the real rows only."""
    g = Graphs(model, max_len=64)
    cache = g.new_cache(64)
    with torch.inference_mode():
        _prefix(model, cache, 10, torch.Generator().manual_seed(0))
        before = g.k.clone()
        g(torch.tensor([[5, 6, 7]]), torch.arange(10, 13), torch.ones(3, 13, dtype=torch.bool),
          cache, 10, commit=True)  # 3 rows in the bucket of 4: one padded row
    assert cache.length == 13
    assert torch.equal(g.k[..., :10, :], before[..., :10, :])  # the prefix
    assert torch.equal(g.k[..., 13:64, :], before[..., 13:64, :])  # nothing past the rows
    assert not torch.equal(g.k[..., 64 + 3, :], before[..., 64 + 3, :])  # the pad's scratch slot


def test_the_cache_is_lent_to_one_run_at_a_time(model):
    """new_cache lends the static cache while no run holds it, and only for a run it holds;
    otherwise it hands out an eager cache of the capacity asked for."""
    g = Graphs(model, max_len=64)
    first = g.new_cache(40)
    second = g.new_cache(40)
    assert isinstance(first, StaticCache) and not isinstance(second, StaticCache)
    assert isinstance(second, KVCache) and second.max_len == 40
    del first
    assert isinstance(g.new_cache(64), StaticCache)
    assert not isinstance(g.new_cache(65), StaticCache)  # longer than the static cache


@pytest.mark.parametrize("attention", ["sparse", "dense"])
@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("plan", [ONE_ROUND, TWO_ROUNDS], ids=["one-round", "two-rounds"])
def test_static_path_gives_the_eager_ids(pair, attention, schedule, plan):
    """Greedy runs on static shapes give the eager run's ids, in every schedule, sparse and
    dense, over 1 and 2 rounds, and every forward of them fits a bucket."""
    eager, static = pair
    cfg = greedy(plan=plan, attention=attention, schedule=schedule)
    before = dict(static.graphs.counts)
    want, got = eager.generate_text(PROMPT, cfg), static.generate_text(PROMPT, cfg)
    assert got.token_ids == want.token_ids and got.text == want.text
    assert got.stats.rounds == plan.count("<sync/>") + 1 and got.stats.denoise_steps > 0
    assert static.graphs.counts["static"] - before["static"] == got.stats.forward_passes
    assert static.graphs.counts["eager"] == before["eager"]


@pytest.mark.parametrize("mode", ["autoregressive", "diffusion"])
def test_static_path_gives_the_eager_ids_in_the_baselines(pair, mode):
    """The AR and plain-diffusion baselines give the eager ids on static shapes too."""
    eager, static = pair
    cfg = greedy(mode=mode, max_new_tokens=40)
    assert static.generate_text(PROMPT, cfg).token_ids == eager.generate_text(PROMPT, cfg).token_ids


def test_forwards_wider_than_every_bucket_run_eager(tiny_ckpt, pair):
    """With buckets of 1 and 4 only, the wider forwards (the prompt, a denoise step) run eager
    on the same static cache, the sampled plan's AR steps on static shapes, and the ids of the
    model's own plan do not change."""
    eager, _ = pair
    narrow = load_engine(tiny_ckpt)
    narrow.graphs = Graphs(narrow.model, widths=(1, 4))
    cfg = greedy()
    got = narrow.generate_text(PROMPT, cfg)
    assert got.token_ids == eager.generate_text(PROMPT, cfg).token_ids
    assert narrow.graphs.counts["eager"] > 0 and narrow.graphs.counts["static"] > 0


def test_a_second_concurrent_run_runs_eager_with_the_same_ids(pair):
    """Two runs streamed in turn: the first holds the static cache, the second gets an eager
    one; both give the ids each gives alone."""
    eager, static = pair
    a_cfg, b_cfg = greedy(plan=TWO_ROUNDS), greedy(plan=ONE_ROUND, attention="dense")
    streams = [static.generate(PROMPT, c) for c in (a_cfg, b_cfg)]
    finals, live, eager_before = [None, None], [0, 1], static.graphs.counts["eager"]
    while live:  # one event of each run in turn
        for i in list(live):
            event = next(streams[i], None)
            if event is None:
                live.remove(i)
            else:
                finals[i] = event
    assert finals[0].token_ids == eager.generate_text(PROMPT, a_cfg).token_ids
    assert finals[1].token_ids == eager.generate_text(PROMPT, b_cfg).token_ids
    assert static.graphs.counts["eager"] - eager_before == finals[1].stats.forward_passes


def test_the_cpu_captures_nothing(pair):
    """On the CPU the buckets are built at load but not captured: no graph, no capture time."""
    graphs = pair[1].graphs
    assert set(graphs._buckets) == set(graphs.widths)
    assert all(b.graph is None for b in graphs._buckets.values())
    assert graphs.capture_seconds == {} and graphs.capture_total == 0.0


def test_how_it_works_says_what_was_captured(model):
    """The page's capture line: nothing on the CPU (nothing is captured), and on a GPU the widths
    and the seconds its capture took, summed from the graphs' own record."""
    from pdiff.app.speed import capture_note

    graphs = Graphs(model, max_len=64, widths=(1, 8), capture=False)
    graphs.prepare()
    assert capture_note(None) == "" and capture_note(graphs) == ""
    graphs.capture_seconds.update({1: 0.25, 8: 0.5})  # as _capture records them on CUDA
    note = capture_note(graphs)
    assert "2 widths (1 to 8 tokens)" in note and f"in {graphs.capture_total:.1f} s" in note
