"""A scripted fake model whose logits are known: it writes a given plan, then fills spans.

It has DreamModel's interface (ids, positions, visibility, cache, start, commit -> logits), so
the real engine drives it. At plan positions it puts all mass on the next scripted token; at any
other position it prefers token `fill` with a confidence that rises with the position, so the
commit order of every schedule is known in advance.
"""

from __future__ import annotations

import torch
from torch import nn

from pdiff.model import PRESETS, KVCache


class ScriptedModel(nn.Module):
    def __init__(self, vocab_size: int, prompt_len: int, script: list[int], fill: int,
                 poison: str | None = None) -> None:
        super().__init__()
        self.config = type(PRESETS["tiny"])(**{**PRESETS["tiny"].__dict__, "vocab_size": vocab_size})
        self.lm_head = nn.Linear(1, 1)  # only for .weight.device / dtype
        self.prompt_len, self.script, self.fill = prompt_len, script, fill
        self.poison = poison  # "nan" or "inf": every logit row is broken that way

    def new_cache(self, max_len: int) -> KVCache:
        return KVCache(self.config, max_len, "cpu", torch.float32)

    def forward(self, ids, positions, visibility, cache=None, start=0, commit=False):
        if cache is not None and commit:
            cache.length = start + ids.shape[1]
        V = self.config.vocab_size
        logits = torch.full((1, len(positions), V), -10.0)
        for row, pos in enumerate(positions.tolist()):
            k = pos + 1 - self.prompt_len  # index of the token this position predicts
            if 0 <= k < len(self.script):
                logits[0, row, self.script[k]] = 10.0
            else:
                logits[0, row, self.fill] = 1.0 + 0.01 * pos  # later slots are surer
                logits[0, row, self.fill + 1] = 0.5
        if self.poison == "nan":
            logits[:] = float("nan")
        elif self.poison == "inf":
            logits[..., self.fill] = float("inf")
        return logits
