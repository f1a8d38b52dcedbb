"""The model and its loader: equal to transformers' Qwen2 on real checkpoint folders."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from pdiff.loader import CheckpointError, load_engine, load_model, resolve
from pdiff.tokenizer import build_tokenizer
from tests.conftest import CORPUS, write_tiny_checkpoint


def _hf_qwen2(folder, max_shard_size=None, vocab=300):
    """Write a tiny random Qwen2 checkpoint with transformers itself, plus a tagged tokenizer."""
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=vocab, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        rope_theta=5000.0, rms_norm_eps=1e-6, tie_word_embeddings=False,
    )
    model = Qwen2ForCausalLM(config).eval()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.1)
    kwargs = {"max_shard_size": max_shard_size} if max_shard_size else {}
    model.save_pretrained(folder, **kwargs)
    build_tokenizer(CORPUS, vocab_size=vocab).save_pretrained(folder)
    return model


@pytest.mark.parametrize("shard", [None, "40KB"])
def test_logits_equal_transformers_qwen2(tmp_path, shard):
    """Under causal visibility our logits equal transformers' Qwen2 (fp32, < 1e-4), sharded too."""
    ref = _hf_qwen2(tmp_path, shard)
    if shard:
        assert (tmp_path / "model.safetensors.index.json").is_file()
    ours = load_model(tmp_path)
    ids = torch.randint(0, 300, (1, 37))
    with torch.no_grad():
        expected = ref(ids).logits[0]
        causal = torch.ones(37, 37, dtype=torch.bool).tril()
        got = ours(ids, torch.arange(37), causal)[0]
    assert (got - expected).abs().max().item() < 1e-4


def test_cached_forward_equals_full_forward(tiny_ckpt):
    """Feeding a sequence in pieces through the KV cache gives the logits of one full forward."""
    model = load_model(tiny_ckpt)
    ids = torch.randint(0, 300, (1, 20))
    causal = torch.ones(20, 20, dtype=torch.bool).tril()
    with torch.no_grad():
        full = model(ids, torch.arange(20), causal)[0]
        cache = model.new_cache(20)
        a = model(ids[:, :12], torch.arange(12), causal[:12, :12], cache, 0, commit=True)[0]
        b = model(ids[:, 12:], torch.arange(12, 20), causal[12:, :20], cache, 12, commit=True)[0]
    assert torch.allclose(torch.cat([a, b]), full, atol=1e-5)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_tracks_fp32(tiny_ckpt, dtype):
    """bf16/fp16 logits stay within a relative error of about 1e-2 of fp32."""
    ids = torch.randint(0, 300, (1, 16))
    causal = torch.ones(16, 16, dtype=torch.bool).tril()
    with torch.no_grad():
        ref = load_model(tiny_ckpt)(ids, torch.arange(16), causal)[0]
        half = load_model(tiny_ckpt, dtype=dtype)(ids, torch.arange(16), causal)[0].float()
    rel = (half - ref).norm() / ref.norm()
    assert rel.item() < 3e-2


def test_missing_path_is_a_clear_error(tmp_path):
    """A path that does not exist is named in the error."""
    with pytest.raises(CheckpointError, match="does not exist"):
        resolve(tmp_path / "nope" / "model")


def test_folder_without_config_is_not_a_checkpoint(tmp_path):
    """A folder without config.json is refused as not a checkpoint."""
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        load_engine(tmp_path)


def test_unknown_model_type_is_refused(tmp_path):
    """A config.json of another architecture is refused by model_type."""
    write_tiny_checkpoint(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "model_type": "llama"}))
    with pytest.raises(CheckpointError, match="llama"):
        load_engine(tmp_path)


def test_tokenizer_without_a_tag_names_it(tmp_path):
    """A checkpoint whose tokenizer lacks a control tag gets an error naming that tag."""
    write_tiny_checkpoint(tmp_path)
    data = json.loads((tmp_path / "tokenizer.json").read_text())
    data["added_tokens"] = [t for t in data["added_tokens"] if t["content"] != "<sync/>"]
    data["model"]["vocab"].pop("<sync/>")
    (tmp_path / "tokenizer.json").write_text(json.dumps(data))
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    config["extra_special_tokens"].remove("<sync/>")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="<sync/>"):
        load_engine(tmp_path)


@pytest.mark.parametrize("model_type", ["qwen2", "Dream"])
def test_tokenizer_is_exactly_its_tokenizer_json(tmp_path, model_type):
    """The loaded tokenizer splits text as tokenizer.json says, whatever config.json's model_type
    (transformers' Qwen2Tokenizer would re-split digits with Qwen's own pattern)."""
    from tokenizers import Tokenizer as RawTokenizer

    write_tiny_checkpoint(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "model_type": model_type}))
    raw = RawTokenizer.from_file(str(tmp_path / "tokenizer.json"))
    text = "The river Osk is 180 km long; it costs 40 coins, made in 1999."
    assert load_engine(tmp_path).tok.encode_plain(text) == raw.encode(text, add_special_tokens=False).ids


def test_hub_id_offline_is_a_clear_error(monkeypatch, tmp_path):
    """A hub id that cannot be fetched gives a message naming it, not a traceback."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(CheckpointError, match="dmisrael/planned-diffusion-dream7b-sft-16ep"):
        resolve("dmisrael/planned-diffusion-dream7b-sft-16ep")


def test_tied_embeddings_load(tmp_path):
    """A checkpoint with tied embeddings (no lm_head in the file) loads and ties them."""
    write_tiny_checkpoint(tmp_path, tie=True)
    model = load_model(tmp_path)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
