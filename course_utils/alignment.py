"""Whole-word labels for attention maps over byte-level BPE tokens (notebook 04's cross-attention plots).

A byte-level token can hold half a character: "Äußerlichkeiten" splits into pieces whose bytes
are not valid UTF-8 on their own, and labelling each piece prints "�". `token_groups` gathers the
tokens of one word (one pre-split chunk of GPT-2's regex, notebook 03) and decodes each group as
a whole; `group_attention` turns a token-by-token attention map into a word-by-word one: the
attention a target word pays a source word is the mass its tokens put on the source word's
tokens (summed: rows still add to 1), averaged over the target word's tokens.

Imports the tokenizer's pre-split (`course_utils.bytelevel`), nothing else of the course.
"""

from __future__ import annotations

from typing import Sequence

import torch

from course_utils.bytelevel import pre_split
from course_utils.checks import check_tensor

__all__ = ["token_groups", "group_attention"]


def _token_bytes(tokenizer, i: int) -> bytes | None:
    """The bytes of token i, or None for a special token (it is a group of its own)."""
    if i in tokenizer.inverse_special:
        return None
    if i not in tokenizer.vocab:
        raise ValueError(f"token_groups: id {i!r} is not in the tokenizer's vocabulary (0..{len(tokenizer) - 1})")
    return tokenizer.vocab[i]


def _word_starts(data: bytes, use_regex: bool) -> set[int]:
    """Byte offsets where a word (a pre-split chunk) begins; by spaces when the bytes are not valid UTF-8."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:  # a model may emit a cut character: fall back to spaces
        return {0} | {k for k in range(len(data)) if data[k : k + 1] == b" "}
    starts, pos = set(), 0
    for chunk in pre_split(text, use_regex):
        starts.add(pos)
        pos += len(chunk.encode("utf-8"))
    return starts


def _whole(data: bytes) -> bool:
    """True when the bytes are complete UTF-8 characters."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def token_groups(tokenizer, ids: Sequence[int], unit: str = "word") -> list[tuple[str, list[int]]]:
    """Group the positions of `ids` into words: [(label, [positions]), ...] in order.

    unit="piece" keeps the tokens apart where it can: a group closes as soon as its bytes are
    whole characters (for one-word compounds such as German number words, whose parts align).

    A new group starts where a pre-split chunk starts (a word with its leading space, a number, a
    punctuation run) or at a special token; a token that straddles a chunk boundary keeps the
    chunks together. Each label is its group's bytes decoded at once (stripped of spaces), so a
    multi-byte character cut between two tokens is read whole, never as "�".

    >>> from course_utils.bytelevel import ByteLevelBPE
    >>> tok = ByteLevelBPE(special_tokens=["<eos>"])
    >>> token_groups(tok, tok.encode("Äußer ja.<eos>"))
    [('Äußer', [0, 1, 2, 3, 4, 5, 6]), ('ja', [7, 8, 9]), ('.', [10]), ('<eos>', [11])]
    """
    if unit not in ("word", "piece"):
        raise ValueError(f"token_groups: unit must be 'word' or 'piece', got {unit!r}")
    pieces = [_token_bytes(tokenizer, int(i)) for i in ids]
    data = b"".join(p for p in pieces if p is not None)
    starts = _word_starts(data, getattr(tokenizer, "use_regex", None))
    groups: list[tuple[list[int], bytes | str]] = []
    offset, after_special = 0, True
    for pos, piece in enumerate(pieces):
        if piece is None:
            groups.append(([pos], tokenizer.inverse_special[int(ids[pos])]))
            after_special = True
            continue
        if after_special or (offset in starts if unit == "word" else _whole(groups[-1][1])):
            groups.append(([pos], piece))
        else:
            positions, acc = groups[-1]
            groups[-1] = (positions + [pos], acc + piece)
        offset += len(piece)
        after_special = False
    out = []
    for positions, acc in groups:
        label = acc if isinstance(acc, str) else acc.decode("utf-8", errors="replace").strip()
        out.append((label or repr(acc.decode("utf-8", errors="replace")), positions))
    return out


def group_attention(
    weights: torch.Tensor, tgt_groups: Sequence[tuple[str, list[int]]], src_groups: Sequence[tuple[str, list[int]]]
) -> torch.Tensor:
    """A (T, S) token attention map -> a (len(tgt_groups), len(src_groups)) word map.

    Columns: the mass on a source word's tokens is summed (attention is a distribution over
    source tokens, so a word's share is the sum of its tokens'). Rows: a target word's tokens
    are averaged (each row still adds up to the same total as the token rows did).
    """
    check_tensor("group_attention", "weights", weights, shape="(T, S)")
    if weights.dim() != 2:
        raise ValueError(
            f"group_attention: weights must be (T, S) for one head and one sentence, got {tuple(weights.shape)}"
        )
    T, S = weights.shape
    for name, groups, n in (("tgt_groups", tgt_groups, T), ("src_groups", src_groups, S)):
        covered = sorted(p for _, ps in groups for p in ps)
        if covered != list(range(n)):
            raise ValueError(
                f"group_attention: {name} must cover positions 0..{n - 1} once each (the map's size), got "
                f"{len(covered)} positions; build them with token_groups on the same ids the map was made from"
            )
    cols = torch.stack([weights[:, ps].sum(-1) for _, ps in src_groups], dim=-1)  # (T, S_words)
    return torch.stack([cols[ps].mean(0) for _, ps in tgt_groups])  # (T_words, S_words)
