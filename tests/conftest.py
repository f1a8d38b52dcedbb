"""Shared fixtures: tiny checkpoints written by the tests themselves, in the released format."""

from __future__ import annotations

import pytest
import torch

from pdiff.loader import load_engine, save_checkpoint
from pdiff.model import PRESETS, DreamModel
from pdiff.tokenizer import build_tokenizer

CORPUS = [
    "The city of Velora lies on the river Osk and is known for glass lanterns.",
    "A profile of the product: it is made of oak, costs 40 coins and is blue.",
    "1. First, mix the flour. 2. Then bake it for 20 minutes at 180 degrees.",
    "In summary, the animal lives in forests, eats berries and is small and grey.",
] * 20


def write_tiny_checkpoint(folder, seed: int = 0, vocab_size: int = 400, tie: bool = False):
    """A random tiny planned-diffusion checkpoint: our tokenizer (with the tags) and weights."""
    tok = build_tokenizer(CORPUS, vocab_size=vocab_size)
    torch.manual_seed(seed)
    config = PRESETS["tiny"]
    config = type(config)(**{**config.__dict__, "vocab_size": len(tok), "tie_word_embeddings": tie})
    model = DreamModel(config)
    for p in model.parameters():  # larger weights than the default init: peakier, varied logits
        torch.nn.init.normal_(p, std=0.2)
    return save_checkpoint(model, tok, folder)


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "ckpt")


@pytest.fixture(scope="session")
def engine(tiny_ckpt):
    return load_engine(tiny_ckpt)


@pytest.fixture(scope="module")
def client(server):
    """A gradio_client Client of the module's own `server` fixture (the app on 127.0.0.1, served
    in this process or by `python app.py`)."""
    from gradio_client import Client

    c = Client(server.url, verbose=False)
    yield c
    c.close()
