"""The CUDA path: the model and engine invariants, on every device (tests/devices.py).
On CUDA the engines load with their forwards captured as CUDA graphs (pdiff.graphs), so every
engine test here runs on the graphs, and one test compares them with the eager path.

Each test runs on "cpu" and "cuda"; the cuda leg is marked `gpu` and skipped with "no CUDA
device" where there is none, so `pytest -m gpu tests/test_cuda.py` is the GPU check's test run
(scripts/gpu-check.sh). The CPU legs run in the normal suite and show that each check can fail.
The probe tests prove the probes themselves see what they count.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from pdiff import events as E
from pdiff.config import GenerationConfig
from pdiff.loader import load_engine, load_model
from pdiff.notes.data import make_split
from pdiff.sampling import adjusted_probs, sample
from tests.devices import CUDA, DEVICES, HostCopies, Placement
from tests.test_engine import ONE_ROUND, TWO_ROUNDS
from tests.test_model import _hf_qwen2

PROMPT = "Write about Velora."
HELD_OUT = make_split("heldout", 1)[0].prompt  # a prompt the bundled model never saw
BF16_TOLERANCE = 3e-2  # relative error of bf16 logits against fp32, as in tests/test_model.py


def _loader(name, graphs: bool | None = None):
    """Engines of `name` by (device, dtype); graphs None: on static shapes, captured, on CUDA."""
    cache = {}

    def get(device: str, dtype: str = "float32"):
        if (device, dtype) not in cache:
            cache[device, dtype] = load_engine(name, device=device, dtype=dtype, graphs=graphs)
        return cache[device, dtype]

    return get


@pytest.fixture(scope="module")
def engines(tiny_ckpt):
    """The tiny random checkpoint, loaded once per (device, dtype)."""
    return _loader(tiny_ckpt)


@pytest.fixture(scope="module")
def eager_engines(tiny_ckpt):
    """The tiny random checkpoint with every forward eager (no graphs), on every device."""
    return _loader(tiny_ckpt, graphs=False)


@pytest.fixture(scope="module")
def static_engines(tiny_ckpt):
    """The tiny random checkpoint on static shapes: captured CUDA graphs on CUDA, uncaptured
    on the CPU (where loading does not turn them on by itself)."""
    return _loader(tiny_ckpt, graphs=True)


@pytest.fixture(scope="module")
def bundled():
    """The bundled planned-diffusion model (it plans for itself), once per (device, dtype)."""
    return _loader(None)


def greedy(**knobs) -> GenerationConfig:
    return GenerationConfig(**{"temperature": 0.0, "max_new_tokens": 120, "max_plan_tokens": 12,
                               **knobs})


# --- model -----------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_logits_equal_transformers_qwen2(tmp_path, device):
    """On each device, in fp32, our logits equal transformers' Qwen2 under causal visibility
    (< 1e-4), for a checkpoint that transformers itself wrote."""
    ref = _hf_qwen2(tmp_path).to(device)
    ours = load_model(tmp_path, device=device)
    ids = torch.randint(0, 300, (1, 37), generator=torch.Generator().manual_seed(0)).to(device)
    causal = torch.ones(37, 37, dtype=torch.bool, device=device).tril()
    with torch.no_grad():
        expected = ref(ids).logits[0]
        got = ours(ids, torch.arange(37, device=device), causal)[0]
    assert (got - expected).abs().max().item() < 1e-4


def _final_layout(engine, prompt, config):
    """The layout (ids and span visibility) at the end of a run of `config`."""
    stream = engine.generate(prompt, config)
    next(stream)
    run = stream.gi_frame.f_locals["run"]
    final = list(stream)[-1]
    return run.layout, final


@pytest.mark.parametrize("device", DEVICES)
def test_bf16_tracks_fp32_on_the_greedy_plan(bundled, device):
    """On the sequence and span visibility of an fp32 greedy run of the bundled model (its own
    plan, its spans), bf16 logits stay within the stated relative error of fp32 logits."""
    fp32 = bundled(device)
    layout, final = _final_layout(fp32, HELD_OUT, fp32.default_config(temperature=0.0))
    assert sum(len(r) for r in final.plan) >= 2, "the greedy plan should open spans"
    n = layout.length
    pos = torch.arange(n, device=device)
    vis = layout.visibility(pos, pos)  # (T, T): causal prefix, block-sparse spans
    with torch.no_grad():
        ref = fp32.model(layout.ids[:n][None], pos, vis)[0]
        half = bundled(device, "bfloat16").model(layout.ids[:n][None], pos, vis)[0].float()
    rel = (half - ref).norm() / ref.norm()
    assert rel.item() < BF16_TOLERANCE


# --- sampler ---------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("temperature,top_p,top_k", [(1.0, 1.0, 0), (0.2, 0.95, 0), (0.7, 0.9, 20)])
def test_sample_draws_what_torch_multinomial_draws(device, temperature, top_p, top_k):
    """From the same generator state, `sample` draws exactly torch.multinomial's tokens from the
    adjusted distribution, and leaves the generator in the same state."""
    logits = torch.randn(64, 500, generator=torch.Generator().manual_seed(0)).to(device) * 3
    ours, theirs = (torch.Generator(device=device).manual_seed(7) for _ in range(2))
    tokens, probs = sample(logits, temperature, top_p, top_k, ours)
    expected = torch.multinomial(adjusted_probs(logits, temperature, top_p, top_k), 1, generator=theirs)
    assert torch.equal(tokens, expected.squeeze(-1))
    assert torch.equal(ours.get_state(), theirs.get_state())


# --- engine ----------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("attention", ["sparse", "dense"])
@pytest.mark.parametrize("plan", [ONE_ROUND, TWO_ROUNDS], ids=["one-round", "two-rounds"])
def test_cached_equals_uncached(engines, device, attention, plan):
    """On each device, at temperature 0, cached and uncached runs give identical token ids."""
    engine = engines(device)
    cfg = greedy(plan=plan, attention=attention)
    cached = engine.generate_text(PROMPT, cfg)
    plain = engine.generate_text(PROMPT, dataclasses.replace(cfg, use_cache=False))
    assert cached.token_ids == plain.token_ids
    assert cached.stats.denoise_steps > 0 and cached.stats.rounds == plan.count("<sync/>") + 1


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("schedule", ["reference", "paper", "adaptive"])
@pytest.mark.parametrize("attention", ["sparse", "dense"])
@pytest.mark.parametrize("plan", [ONE_ROUND, TWO_ROUNDS], ids=["one-round", "two-rounds"])
def test_graphs_give_the_eager_ids(static_engines, eager_engines, device, schedule, attention, plan):
    """At temperature 0, runs on the graphs (replayed CUDA graphs on CUDA) give the eager run's
    token ids, in every schedule, sparse and dense, over 1 and 2 rounds, and every forward of
    them ran on the graphs."""
    graphed, eager = static_engines(device), eager_engines(device)
    assert eager.graphs is None
    cfg = greedy(plan=plan, attention=attention, schedule=schedule, threshold=0.5)
    before = graphed.graphs.counts["static"]
    got, want = graphed.generate_text(PROMPT, cfg), eager.generate_text(PROMPT, cfg)
    assert got.token_ids == want.token_ids
    assert got.stats.rounds == plan.count("<sync/>") + 1 and got.stats.denoise_steps > 0
    assert graphed.graphs.counts["static"] - before == got.stats.forward_passes


@pytest.mark.parametrize("device", DEVICES)
def test_loading_captures_every_bucket_on_cuda_only(engines, device):
    """A CUDA load captures one graph per width and records each capture's seconds; a CPU load
    leaves the graphs off, so the CPU's eager path is unchanged."""
    engine = engines(device)
    if device == "cpu":
        assert engine.graphs is None
        return
    graphs = engine.graphs
    assert all(b.graph is not None for b in graphs._buckets.values())
    assert set(graphs.capture_seconds) == set(graphs.widths) and graphs.capture_total > 0


@pytest.mark.parametrize("device", DEVICES)
def test_host_copy_probe_counts_every_kind_of_read(device):
    """The probe counts tolist, bool(), a boolean-mask read and write, and nonzero: one each.
    On CUDA, torch's sync debug mode also sees the four that must synchronise (a scalar write
    through a boolean mask may run as masked_fill_, which does not)."""
    t = torch.arange(6, device=device)
    with HostCopies(device) as probe:
        t.tolist()
        bool(t.any())
        _ = t[t > 2]
        t[t > 4] = 0
        t.nonzero()
    assert probe.reads == 5
    assert probe.syncs >= 4 if device == "cuda" else probe.syncs == 0


COPY_CASES = {
    "sparse": dict(),
    "dense": dict(attention="dense"),
    "uncached": dict(use_cache=False),
    "paper-threshold": dict(schedule="paper", threshold=0.5, steps_ratio=0.5),
    "adaptive-threshold": dict(schedule="adaptive", threshold=0.5),
    "diffusion": dict(mode="diffusion", max_new_tokens=40),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("top_p", [1.0, 0.95])
@pytest.mark.parametrize("case", COPY_CASES)
def test_a_denoise_step_copies_to_the_host_once(engines, device, top_p, case):
    """A denoise step reads the device once: one copy of its event's snapshot. With top-p on,
    the exact nucleus adds one read of which rows reach past their first 128 tokens.
    Counted per DenoiseStep event, from the event before it, in every schedule, attention,
    cache setting and mode, while sampling at temperature 0.2 with the run's generator."""
    engine = engines(device)
    cfg = GenerationConfig(**{"temperature": 0.2, "top_p": top_p, "plan": TWO_ROUNDS,
                              "max_new_tokens": 120, **COPY_CASES[case]})
    bound = 1 + (top_p < 1)
    reads, syncs = [], []  # per denoise step
    with HostCopies(device) as probe:
        last = (0, 0)
        for event in engine.generate(PROMPT, cfg):
            if isinstance(event, E.DenoiseStep):
                reads.append(probe.reads - last[0])
                syncs.append(probe.syncs - last[1])
            last = (probe.reads, probe.syncs)
    assert isinstance(event, E.Finished) and len(reads) == event.stats.denoise_steps > 0
    assert max(reads) <= bound, f"host reads per step: {reads}"
    assert max(syncs) <= bound, f"synchronising copies per step: {syncs}"


def test_placement_probe_sees_a_tensor_elsewhere():
    """The placement probe records each tensor off the device it expects, with its function."""
    with Placement("meta") as probe:
        torch.zeros(3, device="meta") + 1
        torch.arange(3)
    assert probe.calls == 3 and probe.elsewhere == {("arange", "cpu"): 1}


@pytest.mark.parametrize("device", [CUDA])
def test_generator_and_every_tensor_stay_on_the_model_device(engines, device):
    """The run's torch.Generator, layout and KV cache live on the model's device, and every
    tensor that a torch function takes or returns during the denoise steps does too."""
    engine = engines(device)
    stream = engine.generate(PROMPT, GenerationConfig(plan=TWO_ROUNDS, max_new_tokens=120))
    next(stream)
    run = stream.gi_frame.f_locals["run"]
    lay = run.layout
    on_device = [run.generator, lay.ids, lay.pre, lay.lo, lay.hi, run.cache.k, run.cache.v]
    assert {str(x.device) for x in on_device} == {str(engine.device)}
    with Placement(engine.device) as probe:
        denoising = False
        for event in stream:
            if isinstance(event, E.SpansOpened):
                denoising = True
                probe.calls = 0
                probe.elsewhere.clear()
            if isinstance(event, E.RoundEnd):
                break
    assert denoising and probe.calls > 0
    assert not probe.elsewhere, f"tensors off {engine.device}: {dict(probe.elsewhere)}"


def _plain(value) -> bool:
    """Plain data: numbers, strings, None, tuples of plain data, frozen dataclasses of it."""
    if dataclasses.is_dataclass(value):
        return (type(value).__dataclass_params__.frozen
                and all(_plain(getattr(value, f.name)) for f in dataclasses.fields(value)))
    if isinstance(value, tuple):
        return all(_plain(v) for v in value)
    return type(value) in (int, float, str, bool, type(None))


@pytest.mark.parametrize("device", DEVICES)
def test_a_planned_run_streams_plain_data(bundled, device):
    """The bundled model plans for itself on each device, at the default sampling knobs: the
    stream holds its plan tokens, spans, denoise steps and one Finished, last, and every event
    is plain data that survives a JSON round trip unchanged."""
    engine = bundled(device)
    stream = list(engine.generate(HELD_OUT, engine.default_config(seed=1)))
    kinds = [type(e) for e in stream]
    assert kinds.count(E.Finished) == 1 and kinds[-1] is E.Finished
    assert {E.Started, E.PlanToken, E.SpansOpened, E.DenoiseStep, E.RoundEnd} <= set(kinds)
    assert not any(e.forced for e in stream if isinstance(e, E.PlanToken))
    for event in stream:
        assert _plain(event), event
        assert E.from_dict(json.loads(json.dumps(E.to_dict(event)))) == event
