"""`python -m pdiff bench --shape dream-7b`: what one step of the 7B architecture costs on a GPU.

The model is built from `PRESETS[shape]` with random weights (no download) on the meta device,
then materialised on `--device` in bf16 (CUDA) and timed after warm-up, with CUDA events on a GPU.
Each step is timed three ways, one after the other: pdiff on static shapes (pdiff.graphs: CUDA
graphs, captured first, the capture timed), transformers' Qwen2 on the same weights on its own
fast path (pdiff.bench.peer; the AR step only), and pdiff eager:
  (a) one AR decode step over a `--context`-token KV cache, next to the bytes-read floor (every
      weight but the embedding, and the KV cache, read once per step at the card's HBM
      bandwidth, `HBM_TBPS`, or `--hbm-tbps`);
  (b) one denoise step over `--spans` x `--span-len` masked tokens (each block with its two
      tags) after a `--prefix`-token cached prefix, sparse attention;
  (c) the real engine end to end with a forced plan (`--spans` spans of `--span-len` tokens over
      `--rounds` rounds, topics padded to about 20 plan tokens) vs AR writing as many tokens.
Then the issue-32 targets, met or not, from those figures (`TARGETS`).
On CPU, dream-7b shrinks to the tiny preset unless `--layers`/`--hidden` say otherwise, and the
report says so: the CPU figures test the code path, they say nothing about the 7B, and nothing
is captured there.

It deliberately does not know the trained weights: with random weights the plan is forced and
the AR baseline may stop early at a random end token (its time is then scaled per token, and the
report says so). A forced plan is ingested in one forward per round where a real model samples it
token by token; (c) gives the measured time and an estimate with the plan sampled.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import platform
import time
from pathlib import Path

import numpy as np
import torch

from pdiff.graphs import Graphs
from pdiff.model import PRESETS, DreamModel, ModelConfig

PLAN_TOKENS = 20  # target size of the forced plan of (c)
TOPIC_WORDS = ("intro", "facts", "summary", "river", "profile", "price", "size", "city")
# Peak HBM bandwidth in TB/s by the card's name, the most specific name first (vendor data
# sheets): the divisor of the bytes-read floor. GH200 before H200, which its name contains.
HBM_TBPS = (("GH200", 4.0), ("H200", 4.8), ("H100 NVL", 3.9), ("H100 PCIe", 2.0), ("H100", 3.35),
            ("A100-SXM4-80GB", 2.039), ("A100 80GB PCIe", 1.935), ("A100", 1.555),
            ("L40S", 0.864), ("A10G", 0.6), ("L4", 0.3))
ASSUMED_TBPS = 4.8  # a card not in the table: the H200's, and the report says it was assumed
# Issue 32's targets: (key, what is compared, bound, True: the ratio must be at most the bound).
TARGETS = (
    ("ar_floor", "AR step on graphs: median / bytes-read floor", 1.4, True),
    ("ar_jitter", "AR step on graphs: p90 / median", 1.2, True),
    ("ar_peer", "AR step: graphs / the peer (medians)", 1.0, True),
    ("denoise", "denoise step / AR step, both on graphs (medians)", 1.3, True),
    ("end_to_end", "end to end, forced plan: AR / PD, both on graphs", 2.2, False),
)


def bandwidth(given: float | None, device_name: str) -> tuple[float, str]:
    """The HBM bandwidth for the floor, and where it came from: the flag, the table, or assumed."""
    if given:
        return given, f"{given:g} TB/s given by --hbm-tbps"
    for name, tbps in HBM_TBPS:
        if name.lower() in device_name.lower():
            return tbps, f"{tbps:g} TB/s, the peak HBM bandwidth of the {name} ({device_name})"
    return ASSUMED_TBPS, (f"{device_name} is not in the bandwidth table: assumed {ASSUMED_TBPS:g} TB/s "
                          "(an H200's); pass --hbm-tbps for this card")


def shape_config(args, cpu: bool) -> tuple[ModelConfig, list[str]]:
    if args.shape not in PRESETS:
        raise ValueError(f"--shape must be one of {', '.join(PRESETS)}; got {args.shape!r}")
    cfg, notes = PRESETS[args.shape], []
    if cpu and args.shape == "dream-7b" and args.layers is None and args.hidden is None:
        cfg = PRESETS["tiny"]
        notes.append("device is CPU: the dream-7b shape was shrunk to the tiny preset; these figures "
                     "test the code path and say nothing about the 7B")
    if args.hidden:
        heads = max(1, args.hidden // cfg.head_dim)
        kv = math.gcd(heads, cfg.num_key_value_heads)
        cfg = dataclasses.replace(cfg, hidden_size=heads * cfg.head_dim, num_attention_heads=heads,
                                  num_key_value_heads=kv, intermediate_size=64 * round(
                                      heads * cfg.head_dim * cfg.intermediate_size / cfg.hidden_size / 64))
    if args.layers:
        cfg = dataclasses.replace(cfg, num_hidden_layers=args.layers)
    need = max(args.context + 1, args.prefix + args.spans * (args.span_len + 2), 4096)
    if cfg.max_position_embeddings < need:
        cfg = dataclasses.replace(cfg, max_position_embeddings=need)
    return cfg, notes


def random_model(cfg: ModelConfig, device: str, dtype: torch.dtype) -> DreamModel:
    """Random weights (std 0.02, norms 1) materialised straight on the device in `dtype`."""
    from accelerate import init_empty_weights

    with init_empty_weights():
        model = DreamModel(cfg)
    model = model.to(dtype).to_empty(device=device)
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.fill_(1.0) if name.endswith("norm.weight") else p.normal_(0.0, 0.02)
    return model.eval()


def timed(fn, device: str, iters: int, warmup: int = 3) -> list[float]:
    """Milliseconds per call: CUDA events on a GPU, perf_counter on CPU."""
    with torch.inference_mode():
        for _ in range(warmup):
            fn()
        out = []
        for _ in range(iters):
            if device.startswith("cuda"):
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                end.synchronize()
                out.append(start.elapsed_time(end))
            else:
                t = time.perf_counter()
                fn()
                out.append((time.perf_counter() - t) * 1e3)
    return out


def _stats(ms: list[float]) -> dict:
    return dict(median_ms=float(np.median(ms)), min_ms=float(min(ms)),
                p90_ms=float(np.percentile(ms, 90)), iters=len(ms))


def _filled_cache(source: DreamModel | Graphs, length: int, extra: int):
    cache = source.new_cache(length + extra)  # on graphs: their static cache
    cache.k.normal_()
    cache.v.normal_()
    cache.length = length  # the contents do not change the cost of a step
    return cache


def ar_step(source: DreamModel | Graphs, context: int, device: str, iters: int) -> dict:
    """One AR decode step after `context` cached tokens; `source` is the model (eager) or its
    Graphs, whose call is the model's."""
    cache = _filled_cache(source, context, 1)
    ids = torch.randint(0, source.config.vocab_size, (1, 1), device=device)
    pos = torch.tensor([context], device=device)
    vis = torch.ones(1, context + 1, dtype=torch.bool, device=device)
    return _stats(timed(lambda: source(ids, pos, vis, cache, context, False), device, iters))


def denoise_step(source: DreamModel | Graphs, prefix: int, spans: int, length: int, device: str,
                 iters: int) -> dict:
    block = length + 2  # <async> masks </async>
    t = spans * block
    cache = _filled_cache(source, prefix, t)
    ids = torch.randint(0, source.config.vocab_size, (1, t), device=device)
    pos = torch.arange(prefix, prefix + t, device=device)
    vis = torch.zeros(t, prefix + t, dtype=torch.bool, device=device)
    vis[:, :prefix] = True
    for s in range(spans):  # sparse: each block sees the prefix and itself
        vis[s * block:(s + 1) * block, prefix + s * block:prefix + (s + 1) * block] = True
    out = _stats(timed(lambda: source(ids, pos, vis, cache, prefix, False), device, iters))
    return {**out, "tokens": t}


def peer_step(model: DreamModel, context: int, device: str, iters: int, how: str) -> dict | None:
    """The peer's AR step (pdiff.bench.peer) at the same context and weights; None: --peer none."""
    if how == "none":
        return None
    from pdiff.bench.peer import peer_decode, peer_model

    got = peer_decode(peer_model(model), context, iters, device, compiled=how == "compile")
    return {**_stats(got["ms"]), "warmup_seconds": got["warmup_seconds"], "compiled": got["compiled"]}


def _count(n: int) -> str:
    return f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.2f} M"


def roofline(model: DreamModel, context: int, tbps: float) -> dict:
    cfg, p = model.config, next(model.parameters())
    size = p.element_size()
    params = sum(x.numel() for x in model.parameters())
    weights = params * size
    embed = model.model.embed_tokens.weight.numel() * size
    kv = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * cfg.head_dim * context * size
    bw = tbps * 1e12
    all_ms, read_ms = weights / bw * 1e3, (weights - embed + kv) / bw * 1e3
    text = (f"{_count(params)} parameters x {size} bytes = {weights / 1e9:.3g} GB of weights; "
            f"{weights / 1e9:.3g} GB / {tbps:g} TB/s = {all_ms:.3f} ms per AR step. Tighter: the "
            f"embedding table is not read (one row), the KV cache is: ({(weights - embed) / 1e9:.3g} GB "
            f"+ {kv / 1e6:.1f} MB of KV at {context} tokens) / {tbps:g} TB/s = {read_ms:.3f} ms")
    return dict(parameters=params, bytes_per_parameter=size, weight_bytes=weights,
                embedding_bytes=embed, kv_bytes=kv, hbm_tbps=tbps, all_weights_ms=all_ms,
                bytes_read_ms=read_ms, arithmetic=text)


def forced_plan(tok, spans: int, rounds: int) -> tuple[str, list[int]]:
    """Markup of `spans` one-unit items over `rounds` rounds, topics grown to ~PLAN_TOKENS tokens."""
    from pdiff.tags import IM_END, PROMISE, SYNC, TOPIC_END

    if not 1 <= rounds <= spans:
        raise ValueError(f"--rounds must be between 1 and --spans ({spans}); got {rounds}")
    per_round = [spans // rounds + (r < spans % rounds) for r in range(rounds)]
    topics = [TOPIC_WORDS[i % len(TOPIC_WORDS)] for i in range(spans)]

    def markup() -> str:
        out, at = "", 0
        for r, n in enumerate(per_round):
            out += "".join(f"{PROMISE}{topics[at + i]} 1{TOPIC_END}" for i in range(n))
            out += SYNC if r < rounds - 1 else IM_END
            at += n
        return out

    def count() -> int:
        return sum(2 + len(tok.encode_plain(f"{t} 1")) for t in topics) + rounds

    for i in range(64):
        if count() >= PLAN_TOKENS:
            break
        topics[i % spans] += " " + TOPIC_WORDS[(i + spans) % len(TOPIC_WORDS)]
    return markup(), per_round


def end_to_end(model: DreamModel, args, step_ms: float, iters: int, graphs: Graphs | None) -> dict:
    """(c) with every forward eager (graphs None) or on `graphs`; `step_ms` is (a)'s AR step."""
    from pdiff.engine import Engine
    from pdiff.events import Finished, PlanToken
    from pdiff.notes.data import make_split
    from pdiff.tokenizer import Tokenizer, build_tokenizer

    texts = [f"{e.prompt} {e.answer}" for e in make_split("train", 200)]
    tok = Tokenizer(build_tokenizer(texts, vocab_size=400))
    if tok.vocab_size > model.config.vocab_size:
        raise ValueError(f"the tokenizer has {tok.vocab_size} tokens, the model {model.config.vocab_size}")
    engine = Engine(model, tok, name=f"random {args.shape}", length_scale=args.span_len)
    engine.graphs = graphs
    plan, per_round = forced_plan(tok, args.spans, args.rounds)
    prompt = make_split("heldout", 1)[0].prompt
    content = args.spans * args.span_len
    pd_cfg = engine.config(temperature=0.0, plan=plan, steps_ratio=1.0,
                           max_new_tokens=content + args.spans * 2 + 8 * PLAN_TOKENS)
    ar_cfg = engine.config(mode="autoregressive", temperature=0.0, max_new_tokens=content)

    def run(cfg) -> tuple[list, int]:
        finals, plan_tokens = [], 0
        for _ in range(iters + 1):  # the first run is the warm-up
            events = list(engine.generate(prompt, cfg))
            plan_tokens = sum(isinstance(e, PlanToken) for e in events)
            finals.append(next(e for e in events if isinstance(e, Finished)))
        return finals[1:], plan_tokens

    pd, plan_tokens = run(pd_cfg)
    ar, _ = run(ar_cfg)
    pd_s = float(np.median([f.stats.total_seconds for f in pd]))
    ar_s = float(np.median([f.stats.total_seconds for f in ar]))
    written = ar[0].stats.generated_tokens
    ar_scaled = ar_s * content / max(1, written)
    st = pd[0].stats
    sampled = pd_s + max(0, plan_tokens - st.prefill_forwards) * step_ms / 1e3
    return dict(
        plan=plan, spans_per_round=per_round, span_tokens=args.span_len, plan_tokens=plan_tokens,
        prompt_tokens=st.prompt_tokens, content_tokens=content, pd_seconds=pd_s,
        pd_forward_passes=st.forward_passes, pd_critical_path=st.critical_path,
        pd_denoise_steps=st.denoise_steps, pd_seconds_plan_sampled_estimate=sampled,
        ar_seconds=ar_s, ar_tokens_written=written, ar_seconds_for_content=ar_scaled,
        speedup_forced_plan=ar_scaled / pd_s, speedup_plan_sampled_estimate=ar_scaled / sampled,
        note=("PD: the real engine with the forced plan (one prefill forward per round); the "
              "'plan sampled' estimate adds (plan tokens - prefill forwards) x the AR step of (a). "
              "AR: the engine in autoregressive mode; with random weights it may stop early at an "
              "end token, so its time is scaled to the content tokens"), iters=iters)


def targets(rep: dict) -> list[dict]:
    """Issue 32's targets against this run's figures: each ratio, its bound, and whether met."""
    a, b, c = rep["ar_step"], rep["denoise_step"], rep["end_to_end"]
    g = a["graphs"]["median_ms"]
    ratios = {"ar_floor": g / rep["roofline"]["bytes_read_ms"], "ar_jitter": a["graphs"]["p90_ms"] / g,
              "ar_peer": g / a["peer"]["median_ms"] if a["peer"] else None,
              "denoise": b["graphs"]["median_ms"] / g, "end_to_end": c["graphs"]["speedup_forced_plan"]}
    out = []
    for key, what, bound, at_most in TARGETS:
        r = ratios[key]
        met = None if r is None else (r <= bound if at_most else r >= bound)
        out.append(dict(key=key, what=what, bound=bound, at_most=at_most, ratio=r, met=met))
    return out


def _step_lines(step: dict, floor_ms: float | None) -> list[str]:
    """One line per way a step was timed, in the order run: graphs, the peer, eager."""
    lines = []
    for way, label in (("graphs", "pdiff on graphs"), ("peer", "peer (transformers Qwen2)"),
                       ("eager", "pdiff eager")):
        if way not in step:
            continue
        x = step[way]
        if x is None:
            lines.append(f"- {label}: not run (--peer none)")
            continue
        floor = f" = {x['median_ms'] / floor_ms:.2f}x the floor" if floor_ms else ""
        extra = (f"; warm-up {x['warmup_seconds']:.1f} s, torch.compile {'on' if x['compiled'] else 'off'}"
                 if way == "peer" else "")
        lines.append(f"- {label}: median {x['median_ms']:.3f} ms{floor} (min {x['min_ms']:.3f}, "
                     f"p90 {x['p90_ms']:.3f}, {x['iters']} iters){extra}")
    return lines


def _end_to_end_lines(c: dict) -> list[str]:
    lines = []
    for way in ("graphs", "eager"):
        x = c[way]
        lines += [f"- {way}: planned diffusion {x['pd_seconds']:.3f} s ({x['pd_forward_passes']} forwards, "
                  f"{x['pd_denoise_steps']} denoise steps), plan sampled (estimate) "
                  f"{x['pd_seconds_plan_sampled_estimate']:.3f} s; autoregressive {x['ar_seconds']:.3f} s "
                  f"for {x['ar_tokens_written']} tokens -> {x['ar_seconds_for_content']:.3f} s for "
                  f"{x['content_tokens']}; speedup {x['speedup_forced_plan']:.2f}x (forced plan), "
                  f"{x['speedup_plan_sampled_estimate']:.2f}x (plan sampled, estimate)"]
    return lines + [f"- {c['eager']['note']}"]


def _target_line(t: dict) -> str:
    ratio = "n/a" if t["ratio"] is None else f"{t['ratio']:.2f}"
    verdict = {True: "met", False: "NOT met", None: "not measured"}[t["met"]]
    return f"- {t['what']}: {ratio} ({'<=' if t['at_most'] else '>='} {t['bound']:g}): {verdict}"


def report_markdown(rep: dict) -> str:
    a, b, c, r, cap = rep["ar_step"], rep["denoise_step"], rep["end_to_end"], rep["roofline"], rep["capture"]
    m, e = rep["model"], c["eager"]
    per_width = ", ".join(f"{w}: {s:.2f}" for w, s in cap["per_width"].items()) or "none (not captured)"
    lines = [
        f"# pdiff GPU figures: {rep['shape']}", "",
        f"- date: {rep['date']}", f"- device: {rep['device']} ({rep['device_name']}), dtype {rep['dtype']}, "
        f"torch {rep['torch']}",
        f"- model: {m['num_hidden_layers']} layers, hidden {m['hidden_size']}, vocab {m['vocab_size']}, "
        f"{_count(r['parameters'])} parameters, random weights",
        f"- bandwidth: {rep['bandwidth']}",
        f"- graphs: widths {cap['widths']}, static cache {cap['max_len']} slots; built and captured in "
        f"{cap['seconds']:.2f} s (per width, s: {per_width})",
        *[f"- note: {n}" for n in rep["notes"]], "",
        f"## (a) AR decode step, {rep['context']}-token KV context", "",
        f"Floor: {r['arithmetic']}.", "", *_step_lines(a, r["bytes_read_ms"]), "",
        f"## (b) denoise step, {rep['spans']} spans x {rep['span_len']} tokens "
        f"({b['tokens']} with tags, bucket {b['bucket']}), {rep['prefix']}-token cached prefix", "",
        *_step_lines(b, None),
        f"- on graphs = {b['graphs']['median_ms'] / a['graphs']['median_ms']:.2f} AR steps on graphs; "
        f"eager = {b['eager']['median_ms'] / a['eager']['median_ms']:.2f} eager AR steps. It commits "
        f"{rep['spans']} tokens per step at steps_ratio 1 (one per span); the peer has no block "
        "visibility, so no denoise step", "",
        f"## (c) end to end: forced plan ({e['plan_tokens']} plan tokens, spans per round "
        f"{e['spans_per_round']}, {e['span_tokens']} tokens each) vs AR writing {e['content_tokens']} "
        "tokens", "", *_end_to_end_lines(c), "",
        "## Targets (issue 32)", "",
        *[_target_line(t) for t in rep["targets"]],
    ]
    return "\n".join(lines) + "\n"


def main(args, out: Path) -> dict:
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise ValueError(f"device {args.device} was asked for, but no CUDA GPU is available")
    cfg, notes = shape_config(args, cpu=not cuda)
    dtype_name = args.dtype or ("bfloat16" if cuda else "float32")
    model = random_model(cfg, args.device, getattr(torch, dtype_name))
    iters = args.iters or (20 if cuda else 5)
    name = torch.cuda.get_device_name(args.device) if cuda else platform.processor() or "cpu"
    tbps, source = bandwidth(args.hbm_tbps, name)
    graphs = Graphs(model)
    capture_s = graphs.prepare()  # every bucket, before anything is timed
    peer = args.peer or ("compile" if cuda else "eager")
    # Each step three ways, one after the other: on graphs, the peer, eager.
    a = dict(graphs=ar_step(graphs, args.context, args.device, iters),
             peer=peer_step(model, args.context, args.device, iters, peer),
             eager=ar_step(model, args.context, args.device, iters))
    b = dict(graphs=denoise_step(graphs, args.prefix, args.spans, args.span_len, args.device, iters),
             eager=denoise_step(model, args.prefix, args.spans, args.span_len, args.device, iters))
    b.update(tokens=b["eager"]["tokens"], bucket=graphs.bucket(b["eager"]["tokens"]))
    runs = 3 if cuda else 1
    c = dict(graphs=end_to_end(model, args, a["graphs"]["median_ms"], runs, graphs),
             eager=end_to_end(model, args, a["eager"]["median_ms"], runs, None))
    rep = dict(
        shape=args.shape, date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        device=args.device, device_name=name, dtype=dtype_name, torch=torch.__version__,
        model=dataclasses.asdict(cfg), notes=notes, context=args.context, prefix=args.prefix,
        spans=args.spans, span_len=args.span_len, rounds=args.rounds, bandwidth=source,
        capture=dict(seconds=capture_s, per_width=graphs.capture_seconds, widths=list(graphs.widths),
                     max_len=graphs.max_len, captured=graphs.capture),
        graph_forwards=dict(graphs.counts), ar_step=a, denoise_step=b, end_to_end=c,
        roofline=roofline(model, args.context, tbps))
    rep["targets"] = targets(rep)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu.json").write_text(json.dumps(rep, indent=2) + "\n", encoding="utf-8")
    text = report_markdown(rep)
    (out / "gpu.md").write_text(text, encoding="utf-8")
    print(text)
    return rep
