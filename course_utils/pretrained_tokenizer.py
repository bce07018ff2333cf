"""A real model's tokenizer run by our own byte-level BPE (notebook 03): SmolLM2's vocabulary and merges.

A pretrained GPT-2-style tokenizer is a merge list plus a vocabulary that numbers its tokens.
`ByteLevelBPE.from_merges` replays the merges in rank order, so our encoder makes the same
tokens; only the numbering differs. SmolLM2 puts its 17 special tokens first (0 = <|endoftext|>,
1 = <|im_start|>, 2 = <|im_end|>, ...), then the 235 byte tokens its training text used, then
one id per merge. `PretrainedTokenizer` keeps a table from our ids to the model's, so
`encode` gives exactly the ids of the model's own tokenizer (`tests/test_pretrained_tokenizer.py`
and notebook 09 compare them on all of Austen).

`chat_prompt` applies SmolLM2's chat template by hand: every message is
`<|im_start|>{role}\\n{content}<|im_end|>\\n`, a default system message comes first when the
conversation has none, and `<|im_start|>assistant\\n` invites the model's answer.

Concession: the 21 byte values the vocabulary lacks (bytes SmolLM2's training text never had:
control characters such as 0x04, bytes UTF-8 never uses such as 0xC0) cannot be encoded;
`encode` says so instead of inventing an id.
"""

from __future__ import annotations

from typing import Iterable

from course_utils.bytelevel import ByteLevelBPE, bytes_to_unicode
from course_utils.gguf_file import GGUFFile

__all__ = ["PretrainedTokenizer", "SMOLLM_SYSTEM"]

SMOLLM_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
SPECIAL_TYPE = 3  # tokenizer.ggml.token_type of a control (special) token


class PretrainedTokenizer:
    """Our ByteLevelBPE with a pretrained model's merges, speaking the model's token ids."""

    def __init__(self, tokens: list[str], merges: Iterable[str], special: list[str], system: str = ""):
        self.tokens = list(tokens)  # model id -> token in GPT-2's byte stand-ins (or a special token's text)
        model_id = {t: i for i, t in enumerate(self.tokens)}
        if len(model_id) != len(self.tokens):
            raise ValueError("PretrainedTokenizer: the vocabulary lists a token twice")
        pairs = [tuple(m.split(" ")) for m in merges]
        self.bpe = ByteLevelBPE.from_merges(pairs, special_tokens=special)
        b2u = bytes_to_unicode()
        ours_to_model = {b: model_id.get(b2u[b], -1) for b in range(256)}  # -1: a byte the vocabulary lacks
        for k, (a, b) in enumerate(pairs):  # merge k made our id 256 + k, and the model's token a + b
            ours_to_model[256 + k] = model_id[a + b]
        for s, i in self.bpe.special_tokens.items():
            ours_to_model[i] = model_id[s]
        self._to_model = [ours_to_model[i] for i in range(len(self.bpe))]
        self._to_ours = {m: o for o, m in enumerate(self._to_model) if m >= 0}
        self.special_tokens = {s: model_id[s] for s in special}
        self.system = system

    @classmethod
    def from_gguf(cls, gguf: GGUFFile) -> "PretrainedTokenizer":
        """The tokenizer stored in a GGUF file's metadata (tokenizer.ggml.*); it must be a GPT-2-style BPE."""
        md = gguf.metadata
        if md.get("tokenizer.ggml.model") != "gpt2":
            raise ValueError(
                f"PretrainedTokenizer.from_gguf: {gguf.path.name} has a {md.get('tokenizer.ggml.model')!r} "
                "tokenizer; only byte-level BPE ('gpt2') is ours"
            )
        tokens, kinds = md["tokenizer.ggml.tokens"], md["tokenizer.ggml.token_type"]
        special = [t for t, k in zip(tokens, kinds) if k == SPECIAL_TYPE]
        system = SMOLLM_SYSTEM if SMOLLM_SYSTEM in md.get("tokenizer.chat_template", "") else ""
        return cls(tokens, md["tokenizer.ggml.merges"], special, system)

    def __len__(self) -> int:
        return len(self.tokens)

    def __repr__(self) -> str:
        return (
            f"PretrainedTokenizer({len(self)} ids, {len(self.bpe.merges)} merges, {len(self.special_tokens)} special)"
        )

    def encode(self, text: str) -> list[int]:
        """Text -> the model's token ids (special-token strings in the text become their ids)."""
        ours = self.bpe.encode(text)
        ids = [self._to_model[i] for i in ours]
        if -1 in ids:
            bad = sorted({i for i in ours if self._to_model[i] == -1})
            raise ValueError(f"PretrainedTokenizer.encode: the text holds bytes {bad} that this vocabulary lacks")
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """The model's token ids -> text."""
        ours = []
        for i in ids:
            if i not in self._to_ours:
                raise ValueError(f"PretrainedTokenizer.decode: id {i!r} is not in the vocabulary (0..{len(self) - 1})")
            ours.append(self._to_ours[i])
        return self.bpe.decode(ours)

    def chat_prompt(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        """SmolLM2's chat template by hand: messages [{"role": ..., "content": ...}] -> the prompt text."""
        if not messages:
            raise ValueError("chat_prompt: give at least one message, e.g. [{'role': 'user', 'content': 'Hi'}]")
        for m in messages:
            if not isinstance(m, dict) or set(m) != {"role", "content"}:
                raise ValueError(f"chat_prompt: each message must be a dict with 'role' and 'content', got {m!r}")
        out = []
        if self.system and (not messages or messages[0]["role"] != "system"):
            out.append(f"<|im_start|>system\n{self.system}<|im_end|>\n")
        out += [f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages]
        if add_generation_prompt:
            out.append("<|im_start|>assistant\n")
        return "".join(out)
