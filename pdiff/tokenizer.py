"""Text <-> ids for planned diffusion: the checkpoint's tokenizer, its chat template, and the tags.

User text is always plain text here: a prompt that contains `<async>` or `<sync/>` is split so
that no added token (control tag or special token) can be matched inside it. The template's own
markers (`<|im_start|>` and friends) still are. This module also builds the small tokenizer that
pdiff's bundled model is trained with. It knows nothing about models or sampling.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from transformers import PreTrainedTokenizerFast

from pdiff.tags import CONTROL_TAGS, TagIds

SYSTEM_MESSAGE = "You are a helpful assistant."
_SLOT = "\x00pdiff-user-text\x00"  # stands in for the user's text while the template renders

# Qwen2's chat template, trimmed to what pdiff uses; written into the tokenizers pdiff trains.
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


class TokenizerError(ValueError):
    """The checkpoint's tokenizer cannot serve planned diffusion (missing file, tag or template)."""


class Tokenizer:
    """Wraps a Hugging Face fast tokenizer with plain-text encoding and the tag ids."""

    def __init__(self, hf: PreTrainedTokenizerFast, require_tags: bool = True) -> None:
        self.hf = hf
        self.backend = hf.backend_tokenizer
        vocab = hf.get_vocab()
        self.tags = TagIds.resolve(vocab) if require_tags else None
        # Every added token is a string that must never be matched inside user text.
        self._added = sorted(hf.get_added_vocab(), key=len, reverse=True)
        self._piece_cache: dict[int, str] = {}
        self.vocab_size = len(vocab)

    @classmethod
    def load(cls, folder: str | Path, require_tags: bool = True) -> Tokenizer:
        try:
            # Exactly what tokenizer.json says. AutoTokenizer would pick a class from config.json
            # (Qwen2Tokenizer for model_type qwen2), which in transformers 5 rebuilds the
            # pre-tokenizer with Qwen's own pattern: digits split differently from training.
            hf = PreTrainedTokenizerFast.from_pretrained(str(folder))
        except (OSError, ValueError) as err:
            raise TokenizerError(f"no usable tokenizer in the checkpoint: {err}") from None
        if not hf.is_fast:
            raise TokenizerError("pdiff needs a fast tokenizer (tokenizer.json) in the checkpoint")
        return cls(hf, require_tags=require_tags)

    @cached_property
    def eos_ids(self) -> frozenset[int]:
        """Ids that end a turn: <|im_end|>, and the tokenizer's own eos when it differs."""
        ids = {self.tags.im_end} if self.tags else set()
        if self.hf.eos_token_id is not None:
            ids.add(self.hf.eos_token_id)
        return frozenset(ids)

    # --- encoding ---------------------------------------------------------------------------

    def encode_plain(self, text: str) -> list[int]:
        """Encode text with no added token matched: `<sync/>` in user text stays characters."""
        for tag in self._added:
            at = text.find(tag)
            if at >= 0:
                # Split the tag after its first character, so it cannot match as a whole.
                return (
                    self.encode_plain(text[:at])
                    + self.encode_plain(tag[0])
                    + self.encode_plain(tag[1:] + text[at + len(tag):])
                )
        return self.backend.encode(text, add_special_tokens=False).ids if text else []

    def encode_markup(self, text: str) -> list[int]:
        """Encode trusted text in which tags are meant (templates, training data, plans)."""
        return self.backend.encode(text, add_special_tokens=False).ids

    def encode_prompt(self, user_text: str, chat_template: bool = True) -> list[int]:
        """The prompt ids: the chat template around the user's text (spec section 2)."""
        if not chat_template:
            return self.encode_plain(user_text)
        if not self.hf.chat_template:
            raise TokenizerError(
                "this checkpoint's tokenizer has no chat template; "
                "use --no-chat-template to pass the prompt as-is"
            )
        messages = [
            {"role": "system", "content": SYSTEM_MESSAGE},
            {"role": "user", "content": _SLOT},
        ]
        rendered = self.hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        if rendered.count(_SLOT) != 1:
            raise TokenizerError("the chat template does not place the user text exactly once")
        before, after = rendered.split(_SLOT)
        return self.encode_markup(before) + self.encode_plain(user_text) + self.encode_markup(after)

    # --- decoding ---------------------------------------------------------------------------

    def piece(self, token_id: int) -> str:
        """One token's text, tags shown as they are (cached: called for every slot of a step)."""
        text = self._piece_cache.get(token_id)
        if text is None:
            text = self.backend.decode([token_id], skip_special_tokens=False)
            self._piece_cache[token_id] = text
        return text

    def decode(self, ids: list[int]) -> str:
        return self.backend.decode(list(ids), skip_special_tokens=False)


def build_tokenizer(texts, vocab_size: int) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on `texts`, with every control tag as one special token."""
    from tokenizers import Tokenizer as RawTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    specials = SPECIAL_TOKENS + [t for t in CONTROL_TAGS.values() if t not in SPECIAL_TOKENS]
    raw = RawTokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    raw.train_from_iterator(texts, trainer=trainer)
    hf = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=specials[1:],
    )
    hf.chat_template = QWEN_CHAT_TEMPLATE
    return hf
