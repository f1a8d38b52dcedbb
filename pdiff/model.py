"""A Dream/Qwen2-architecture transformer that maps ids, positions and a visibility to logits.

RMSNorm, RoPE (theta from config), grouped-query attention with q/k/v bias, SwiGLU, an untied
lm_head, and Qwen2's weight names (spec section 7), so released checkpoints load unchanged.
The model takes an explicit boolean visibility for every query and key, and an optional static
KV cache; a (T,) tensor `start` writes the T keys at those cache slots and attends over the whole
cache, the fixed shapes pdiff.graphs captures. It knows nothing about tags, plans or sampling:
Dream's shifted-logit convention (the prediction for position p comes from position p-1) is
applied by the engine.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int = 152064
    hidden_size: int = 3584
    intermediate_size: int = 18944
    num_hidden_layers: int = 28
    num_attention_heads: int = 28
    num_key_value_heads: int = 4
    max_position_embeddings: int = 32768
    rope_theta: float = 1_000_000.0
    rms_norm_eps: float = 1e-6
    tie_word_embeddings: bool = False

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @classmethod
    def from_hf(cls, config: dict) -> ModelConfig:
        """Read the fields we need from a Hugging Face config.json dict."""
        values = {f.name: config[f.name] for f in fields(cls) if f.name in config}
        rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
        if "rope_theta" not in config and isinstance(rope, dict) and "rope_theta" in rope:
            values["rope_theta"] = rope["rope_theta"]
        return cls(**values)

    def to_hf(self, model_type: str = "qwen2") -> dict:
        """A config.json dict that both our loader and transformers' Qwen2 read."""
        return {
            "model_type": model_type,
            "architectures": ["Qwen2ForCausalLM"],
            **{f.name: getattr(self, f.name) for f in fields(self)},
            "hidden_act": "silu",
            "attention_bias": True,
            "use_sliding_window": False,
        }


# Named presets: the released 7B shape and the small shapes pdiff trains and tests with.
PRESETS: dict[str, ModelConfig] = {
    "dream-7b": ModelConfig(),
    "small": ModelConfig(
        vocab_size=4096, hidden_size=256, intermediate_size=704, num_hidden_layers=4,
        num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=1024,
        rope_theta=10_000.0,
    ),
    # The size comparison's larger shape: 6 deeper layers, 7.1 M parameters at 1,024 tokens,
    # so a pair still fits 60 MB in float32 (assets/models/README.md, "Enough model").
    "medium": ModelConfig(
        vocab_size=4096, hidden_size=320, intermediate_size=864, num_hidden_layers=6,
        num_attention_heads=5, num_key_value_heads=1, max_position_embeddings=1024,
        rope_theta=10_000.0,
    ),
    "tiny": ModelConfig(
        vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        rope_theta=10_000.0,
    ),
}


class KVCache:
    """Static, preallocated keys and values for one sequence (batch 1).

    `length` is the number of committed positions. A forward may write past `length` without
    committing (the span blocks of a denoise step), so the prefix stays fixed (spec section 5).
    """

    def __init__(self, config: ModelConfig, max_len: int, device, dtype) -> None:
        shape = (config.num_hidden_layers, 1, config.num_key_value_heads, max_len, config.head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)  # (layers, 1, Hkv, S, D)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.max_len = max_len
        self.length = 0


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def rope_tables(positions: torch.Tensor, head_dim: int, theta: float, dtype) -> tuple:
    """cos/sin for absolute positions, in the rotate-half layout of Qwen2."""
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=positions.device).float() / head_dim))
    angles = positions.float()[..., None] * inv  # (T, D/2) or (B, T, D/2)
    angles = torch.cat([angles, angles], dim=-1)  # (T, D)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin  # (B, H, T, D)


class Attention(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        d, h, hkv, hd = (config.hidden_size, config.num_attention_heads,
                         config.num_key_value_heads, config.head_dim)
        self.h, self.hkv, self.hd = h, hkv, hd
        self.q_proj = nn.Linear(d, h * hd, bias=True)
        self.k_proj = nn.Linear(d, hkv * hd, bias=True)
        self.v_proj = nn.Linear(d, hkv * hd, bias=True)
        self.o_proj = nn.Linear(h * hd, d, bias=False)

    def forward(self, x, cos, sin, visibility, cache_kv=None, start=0):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.h, self.hd).transpose(1, 2)  # (B, H, T, D)
        k = self.k_proj(x).view(B, T, self.hkv, self.hd).transpose(1, 2)  # (B, Hkv, T, D)
        v = self.v_proj(x).view(B, T, self.hkv, self.hd).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if isinstance(start, torch.Tensor):  # static shapes (pdiff.graphs): write at the (T,)
            ck, cv = cache_kv  # slots `start` and attend over the whole cache, masked
            ck.index_copy_(2, start, k)
            cv.index_copy_(2, start, v)
            k, v = ck, cv  # (1, Hkv, S, D)
        elif cache_kv is not None:
            ck, cv = cache_kv  # (1, Hkv, S, D) views into the static cache
            ck[:, :, start:start + T] = k
            cv[:, :, start:start + T] = v
            k, v = ck[:, :, :start + T], cv[:, :, :start + T]  # (1, Hkv, start+T, D)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=visibility, enable_gqa=self.h != self.hkv
        )  # (B, H, T, D)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, self.h * self.hd))


class MLP(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.self_attn = Attention(config)
        self.mlp = MLP(config)
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(self, x, cos, sin, visibility, cache_kv=None, start=0):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, visibility, cache_kv, start)
        return x + self.mlp(self.post_attention_layernorm(x))


class Backbone(nn.Module):
    """`model.*` in Qwen2's weight names."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(Block(config) for _ in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)


class DreamModel(nn.Module):
    """ids + positions + visibility (+ cache) -> logits."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.model = Backbone(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight

    def new_cache(self, max_len: int) -> KVCache:
        p = self.lm_head.weight
        return KVCache(self.config, max_len, p.device, p.dtype)

    def forward(
        self,
        ids: torch.Tensor,  # (B, T)
        positions: torch.Tensor,  # (T,) or (B, T) absolute positions for RoPE
        visibility: torch.Tensor,  # (T, S) or (B, 1, T, S) bool; S = start + T with a cache
        cache: KVCache | None = None,
        start: int | torch.Tensor = 0,  # where these T tokens sit in the cache; (T,): their slots
        commit: bool = False,  # advance cache.length to start + T
    ) -> torch.Tensor:
        fixed = isinstance(start, torch.Tensor)  # (T,) cache slots: pdiff.graphs' static shapes
        if cache is not None and not fixed and start + ids.shape[1] > cache.max_len:
            raise ValueError(f"cache holds {cache.max_len} positions, asked for {start + ids.shape[1]}")
        x = self.model.embed_tokens(ids)  # (B, T, d)
        cos, sin = rope_tables(positions, self.config.head_dim, self.config.rope_theta, x.dtype)
        if positions.dim() == 2:  # per row: broadcast over the heads
            cos, sin = cos[:, None], sin[:, None]  # (B, 1, T, D)
        mask = visibility if visibility.dim() == 4 else visibility[None, None]  # (B|1, 1, T, S)
        for i, layer in enumerate(self.model.layers):
            kv = None if cache is None else (cache.k[i], cache.v[i])
            x = layer(x, cos, sin, mask, kv, start)
        if cache is not None and commit:
            cache.length = start + ids.shape[1]
        return self.lm_head(self.model.norm(x))  # (B, T, V)
