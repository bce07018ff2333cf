"""BERT's pre-training data: the masked-language-model rule and next-sentence-prediction pairs.

BERT is trained to fill in blanks (Devlin et al., 2019): 15 % of the non-special tokens are
chosen; of those, 80 % become [MASK], 10 % a random token and 10 % stay as they are, and the
model must say what was there. `mlm_rule` is that rule with the random draws passed in (so a
test can check it exactly); `mask_tokens` draws them. `encode_pair` builds [CLS] A [SEP] B [SEP]
with its segment ids, and `nsp_pairs` draws (A, B, IsNext/NotNext) pairs from running text.

Concessions: no whole-word masking (each BPE token is chosen on its own); the NSP pairs are
fixed-length segments of running text, not sentences. The model is in `course_utils.bert`.
"""

from __future__ import annotations

import random
from typing import Optional, Sequence

import torch

from course_utils.bert import IGNORE, BertConfig
from course_utils.checks import check_number, check_tensor

__all__ = ["mlm_rule", "mask_tokens", "encode_pair", "nsp_pairs"]


def mlm_rule(
    input_ids: torch.Tensor,
    select_u: torch.Tensor,
    action_u: torch.Tensor,
    random_ids: torch.Tensor,
    special: torch.Tensor,
    mask_id: int,
    mlm_probability: float = 0.15,
    mask_share: float = 0.8,
    random_share: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking rule with the random draws given: returns (corrupted inputs, labels).

    A token is chosen when select_u < mlm_probability and it is not special ([CLS], [SEP],
    padding). A chosen token becomes [MASK] when action_u < mask_share, becomes random_ids'
    entry when mask_share <= action_u < mask_share + random_share, and stays itself otherwise.
    labels hold the original id at chosen positions and IGNORE (-100) elsewhere: the loss
    counts the chosen 15 % only, including the unchanged ones (so the model cannot learn
    "an unmasked token is always right as it is").

    input_ids, select_u, action_u, random_ids, special: all (B, T); special is bool.

    >>> ids = torch.tensor([[1, 5, 6, 7, 2]]); special = torch.tensor([[True, False, False, False, True]])
    >>> u1 = torch.tensor([[0.0, 0.1, 0.5, 0.05, 0.0]]); u2 = torch.tensor([[0.0, 0.5, 0.0, 0.95, 0.0]])
    >>> mlm_rule(ids, u1, u2, torch.full_like(ids, 9), special, mask_id=3)
    (tensor([[1, 3, 6, 7, 2]]), tensor([[-100,    5, -100,    7, -100]]))
    """
    fn = "mlm_rule"
    check_tensor(fn, "input_ids", input_ids, dtype="int", shape="(B, T)")
    for name, t in (("select_u", select_u), ("action_u", action_u), ("random_ids", random_ids), ("special", special)):
        if not isinstance(t, torch.Tensor) or t.shape != input_ids.shape:
            raise ValueError(
                f"{fn}: {name} must be a tensor of input_ids' shape {tuple(input_ids.shape)}, "
                f"got {tuple(getattr(t, 'shape', ())) or type(t).__name__}"
            )
    if special.dtype != torch.bool:
        raise TypeError(f"{fn}: special must be a bool tensor (True = never masked), got {special.dtype}")
    for name, p in (("mlm_probability", mlm_probability), ("mask_share", mask_share), ("random_share", random_share)):
        check_number(fn, name, p, low=0, high=1)
    if mask_share + random_share > 1:
        raise ValueError(f"{fn}: mask_share + random_share must be <= 1, got {mask_share} + {random_share}")
    chosen = (select_u < mlm_probability) & ~special  # (B, T) the 15 %
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, IGNORE))
    to_mask = chosen & (action_u < mask_share)  # 80 % of the chosen
    to_random = chosen & (action_u >= mask_share) & (action_u < mask_share + random_share)  # 10 %
    inputs = torch.where(to_mask, torch.full_like(input_ids, mask_id), input_ids)
    inputs = torch.where(to_random, random_ids.to(input_ids.dtype), inputs)  # the other 10 % stay as they are
    return inputs, labels


def mask_tokens(
    input_ids: torch.Tensor,
    config: BertConfig,
    *,
    mlm_probability: float = 0.15,
    generator: Optional[torch.Generator] = None,
    special: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw the random numbers and apply `mlm_rule`: (corrupted inputs, labels), both (B, T).

    Random replacements are drawn uniformly from the non-special ids. special defaults to
    the positions holding config.special_ids.
    """
    if not isinstance(config, BertConfig):
        raise TypeError(f"mask_tokens: config must be a BertConfig, got {type(config).__name__}")
    check_tensor("mask_tokens", "input_ids", input_ids, dim=2, shape="(B, T)")
    dev = input_ids.device
    if special is None:
        special = torch.isin(input_ids, torch.tensor(config.special_ids, device=dev))
    allowed = torch.ones(config.vocab_size, dtype=torch.bool)
    allowed[list(config.special_ids)] = False
    pool = allowed.nonzero().squeeze(1).to(dev)  # the ids a random token can be
    select_u = torch.rand(input_ids.shape, generator=generator).to(dev)
    action_u = torch.rand(input_ids.shape, generator=generator).to(dev)
    random_ids = pool[torch.randint(len(pool), input_ids.shape, generator=generator).to(dev)]
    return mlm_rule(input_ids, select_u, action_u, random_ids, special, config.mask_id, mlm_probability)


def encode_pair(
    a: Sequence[int], b: Optional[Sequence[int]], config: BertConfig, max_len: Optional[int] = None
) -> tuple[list[int], list[int]]:
    """[CLS] a [SEP] b [SEP] and its segment ids (0 for [CLS] a [SEP], 1 for b [SEP]).

    Longer inputs are cut, the longer segment first, to fit max_len (default config.max_len).

    >>> encode_pair([7, 8], [9], BertConfig())
    ([101, 7, 8, 102, 9, 102], [0, 0, 0, 0, 1, 1])
    """
    max_len = max_len or config.max_len
    a, b = list(a), (list(b) if b is not None else None)
    budget = max_len - (3 if b is not None else 2)
    if budget < 2:
        raise ValueError(f"encode_pair: max_len={max_len} leaves no room for tokens besides [CLS]/[SEP]")
    while len(a) + (len(b) if b else 0) > budget:  # longest-first truncation
        (a if b is None or len(a) >= len(b) else b).pop()
    ids = [config.cls_id] + a + [config.sep_id]
    types = [0] * len(ids)
    if b is not None:
        ids += b + [config.sep_id]
        types += [1] * (len(b) + 1)
    return ids, types


def nsp_pairs(
    documents: Sequence[Sequence[int]], segment_len: int, n_pairs: int, seed: int = 0
) -> list[tuple[list[int], list[int], int]]:
    """(A, B, label) pairs for next-sentence prediction from token streams of several documents.

    A is a random segment of segment_len tokens; half the time B is the segment that follows
    it (label 0, "IsNext", the label convention of `transformers`), otherwise a segment from
    another document (label 1, "NotNext"). Every document needs at least 2 * segment_len tokens.
    """
    if len(documents) < 2:
        raise ValueError(
            f"nsp_pairs: need at least 2 documents (NotNext segments come from another one), got {len(documents)}"
        )
    if any(len(d) < 2 * segment_len for d in documents):
        raise ValueError(f"nsp_pairs: every document needs >= 2 * segment_len = {2 * segment_len} tokens")
    rng = random.Random(seed)
    out = []
    for _ in range(n_pairs):
        d = rng.randrange(len(documents))
        doc = documents[d]
        s = rng.randrange(len(doc) - 2 * segment_len + 1)
        a = list(doc[s : s + segment_len])
        if rng.random() < 0.5:
            b, label = list(doc[s + segment_len : s + 2 * segment_len]), 0
        else:
            other = documents[rng.choice([i for i in range(len(documents)) if i != d])]
            t = rng.randrange(len(other) - segment_len + 1)
            b, label = list(other[t : t + segment_len]), 1
        out.append((a, b, label))
    return out
