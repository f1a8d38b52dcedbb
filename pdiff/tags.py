"""The control-tag language of Planned Diffusion (spec section 2), named once.

Every tag is a string; its id is looked up in the loaded tokenizer, never hard-coded. This module
knows the strings and how to resolve them, and nothing about models or sampling.
"""

from __future__ import annotations

from dataclasses import dataclass

# string -> what it does. These are exactly the strings the released checkpoints' tokenizers hold.
PROMISE = "<promise>-<topic>"  # opens one plan item: PROMISE topic-text " " N TOPIC_END
TOPIC_END = "</topic>"  # closes one plan item
ASYNC = "<async>"  # opens a span block; inserted by the runtime, never sampled
ASYNC_END = "</async>"  # closes a span block; inserted by the runtime
SYNC = "<sync/>"  # ends a round; more rounds follow
PAD = "[PAD]"  # span filler for unused span slots; removed from the text
IM_END = "<|im_end|>"  # end of turn; after a plan it marks the last round
MASK = "<|mask|>"  # the diffusion mask

CONTROL_TAGS: dict[str, str] = {
    "promise": PROMISE,
    "topic_end": TOPIC_END,
    "async_": ASYNC,
    "async_end": ASYNC_END,
    "sync": SYNC,
    "pad": PAD,
    "im_end": IM_END,
    "mask": MASK,
}


class MissingTagError(ValueError):
    """The tokenizer lacks a control tag that planned diffusion needs."""


@dataclass(frozen=True)
class TagIds:
    """Token ids of the control tags, resolved from one tokenizer by string."""

    promise: int
    topic_end: int
    async_: int
    async_end: int
    sync: int
    pad: int
    im_end: int
    mask: int

    @classmethod
    def resolve(cls, vocab: dict[str, int], where: str = "the tokenizer") -> TagIds:
        """Look every tag up by its string; name the first one that is missing."""
        missing = [s for s in CONTROL_TAGS.values() if s not in vocab]
        if missing:
            raise MissingTagError(
                f"{where} lacks the control tag(s) {', '.join(repr(m) for m in missing)}; "
                "planned diffusion needs every tag of spec section 2 as a single token"
            )
        return cls(**{field: vocab[s] for field, s in CONTROL_TAGS.items()})

    def all(self) -> frozenset[int]:
        return frozenset(getattr(self, f) for f in CONTROL_TAGS)

    def banned_in_plan(self) -> tuple[int, ...]:
        """Ids the plan may never sample (spec section 4.1, pdiff fix)."""
        return (self.mask, self.async_, self.async_end, self.pad)
