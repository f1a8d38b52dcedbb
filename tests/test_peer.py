"""The bench's peer (pdiff.bench.peer): transformers' Qwen2 on pdiff's own weight tensors.

That the peer and pdiff give the same logits on the same weights is what makes the bench's
side-by-side AR step a comparison of two implementations of one model, not of two models.
On CUDA the bench runs the peer under torch.compile; here it runs eager, on tiny shapes.
"""

from __future__ import annotations

import pytest
import torch

from pdiff.bench.peer import WARMUP, peer_decode, peer_model
from pdiff.graphs import Graphs
from pdiff.model import PRESETS, DreamModel


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = DreamModel(PRESETS["tiny"]).eval()
    for p in m.parameters():  # larger than the default init: peaky logits, greedy ids not tied
        torch.nn.init.normal_(p, std=0.2)
    return m


def test_the_peer_holds_pdiffs_weight_tensors(model):
    """Every peer parameter is the storage of pdiff's parameter of the same name: no copy."""
    peer = peer_model(model)
    ours = dict(model.named_parameters())
    theirs = dict(peer.named_parameters())
    assert set(theirs) == set(ours)
    assert all(theirs[k].data_ptr() == ours[k].data_ptr() for k in ours)


def test_the_peer_gives_pdiffs_logits(model):
    """On the same weights and a causal visibility, the peer's logits are pdiff's (fp32, < 1e-4):
    the weight names map one to one."""
    peer = peer_model(model)
    ids = torch.randint(0, model.config.vocab_size, (1, 33), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        theirs = peer(ids).logits[0]
        ours = model(ids, torch.arange(33), torch.ones(33, 33, dtype=torch.bool).tril())[0]
    assert (theirs - ours).abs().max().item() < 1e-4


def _greedy(source, prompt: list[int], n: int) -> list[int]:
    """pdiff's greedy AR decode of n tokens through a KV cache, on `source` (model or Graphs)."""
    cache = source.new_cache(len(prompt) + n + 1)
    ids, out = torch.tensor([prompt]), []
    with torch.inference_mode():
        logits = source(ids, torch.arange(len(prompt)), torch.ones(len(prompt), len(prompt),
                        dtype=torch.bool).tril(), cache, 0, commit=True)[0, -1]
        for _ in range(n):
            out.append(int(logits.argmax()))
            at = cache.length
            logits = source(torch.tensor([[out[-1]]]), torch.tensor([at]),
                            torch.ones(1, at + 1, dtype=torch.bool), cache, at, commit=True)[0, -1]
    return out + [int(logits.argmax())]


@pytest.mark.parametrize("static", [False, True], ids=["eager", "static-shapes"])
def test_the_peer_decodes_the_ids_pdiff_decodes(model, static):
    """The bench's peer leg decodes WARMUP + n greedy tokens through its StaticCache, one timed
    step each, and they are the ids pdiff decodes from the same prompt, eager or on static shapes."""
    got = peer_decode(peer_model(model), context=40, tokens=6, device="cpu", compiled=False)
    assert len(got["ms"]) == 6 and all(ms > 0 for ms in got["ms"])
    assert len(got["ids"]) == WARMUP + 6 + 1
    source = Graphs(model, max_len=64) if static else model
    assert got["ids"] == _greedy(source, got["prompt"], WARMUP + 6)
