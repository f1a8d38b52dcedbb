"""The peer of the bench's AR step: transformers' own Qwen2 on pdiff's weights, on its fast path.

pdiff's weight names are Qwen2's (spec section 7), so `peer_model` hands the very same tensors
to `Qwen2ForCausalLM` (no copy: the 7B is held once). `peer_decode` then decodes greedily the
way transformers documents for speed ("Static kv-cache and torch.compile", llm_optims): a
`StaticCache` and the forward under `torch.compile(mode="reduce-overhead", fullgraph=True)`,
which captures CUDA graphs. The compile and capture happen in the untimed warm-up steps, and
their time is reported apart.

It deliberately knows nothing of plans or spans: Qwen2 has no block visibility, so the peer has
an AR step only, and it is timed on the same shape, weights and context as pdiff's.
"""

from __future__ import annotations

import time

import torch

from pdiff.model import DreamModel

WARMUP = 3  # untimed steps: torch.compile traces, compiles and records its graphs in these


def peer_model(model: DreamModel):
    """transformers' Qwen2ForCausalLM sharing `model`'s weight tensors, in eval mode."""
    from accelerate import init_empty_weights
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config.from_dict(model.config.to_hf())
    config._attn_implementation = "sdpa"  # the attention pdiff's model runs too
    with init_empty_weights():  # parameters on the meta device; buffers (RoPE) real
        peer = Qwen2ForCausalLM(config)
    peer.load_state_dict(model.state_dict(), assign=True, strict=True)
    return peer.to(model.lm_head.weight.device).eval()  # moves the RoPE buffer; weights are there


def peer_decode(peer, context: int, tokens: int, device: str, compiled: bool) -> dict:
    """Greedy decode of `tokens` steps after a random `context`-token prefill, each step timed
    (ms, CUDA events on a GPU); the seconds the warm-up (compile, capture) took, the prompt,
    and the WARMUP + tokens + 1 greedy ids (the last one predicted, not fed)."""
    from transformers import StaticCache

    from pdiff.bench.shapes import timed

    n = WARMUP + tokens
    cache = StaticCache(config=peer.config, max_cache_len=context + n + 1)
    forward = peer.forward
    if compiled:  # transformers' documented fast path: CUDA graphs through torch.compile
        forward = torch.compile(peer.forward, mode="reduce-overhead", fullgraph=True)
    ids = torch.randint(0, peer.config.vocab_size, (1, context), device=device)
    positions = torch.arange(context + n + 1, device=device)
    with torch.inference_mode():
        logits = peer(input_ids=ids, past_key_values=cache, use_cache=True,
                      cache_position=positions[:context]).logits  # (1, context, V)
    state = {"next": logits[:, -1:].argmax(-1), "at": context, "ids": []}  # next: (1, 1)

    def step() -> None:
        at = state["at"]
        out = forward(input_ids=state["next"], past_key_values=cache, use_cache=True,
                      cache_position=positions[at:at + 1].clone(),
                      position_ids=positions[None, at:at + 1].clone())
        state["ids"].append(state["next"])
        state["next"] = out.logits[:, -1:].argmax(-1).clone()  # clone: the graph reuses its output
        state["at"] = at + 1

    t = time.perf_counter()
    with torch.inference_mode():
        for _ in range(WARMUP):
            step()
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
    warmup_s = time.perf_counter() - t
    ms = timed(step, device, tokens, warmup=0)
    fed = torch.cat(state["ids"] + [state["next"]], dim=1)[0].tolist()  # one read, after timing
    return {"ms": ms, "warmup_seconds": warmup_s, "compiled": compiled, "tokens": tokens,
            "prompt": ids[0].tolist(), "ids": fed}  # ids: every greedy token, in order
