"""course_utils.bert_data: BERT's masking rule branch by branch, its proportions, [CLS] A [SEP] B [SEP]
inputs with longest-first truncation, and next-sentence pairs."""

import doctest
import math

import course_utils  # noqa: F401  (before torch: OMP_WAIT_POLICY)
import pytest
import torch

import course_utils.bert_data as bert_data
from course_utils.bert import IGNORE, BertConfig
from course_utils.bert_data import encode_pair, mask_tokens, mlm_rule, nsp_pairs
from test_bert import CFG  # the same small config as the model tests


def test_doctests():
    result = doctest.testmod(bert_data, raise_on_error=False)
    assert result.attempted >= 4 and result.failed == 0


# ------------------------------------------------------------------ the MLM rule
def test_mlm_rule_each_branch():
    ids = torch.tensor([[1, 20, 21, 22, 23, 24, 2]])
    special = torch.tensor([[True, False, False, False, False, False, True]])
    u1 = torch.tensor([[0.0, 0.10, 0.10, 0.10, 0.5, 0.149, 0.0]])  # chosen: positions 1, 2, 3, 5 (not 0, 6: special)
    u2 = torch.tensor([[0.0, 0.10, 0.85, 0.95, 0.0, 0.79, 0.0]])  # mask, random, keep, -, mask
    rnd = torch.full_like(ids, 40)
    inputs, labels = mlm_rule(ids, u1, u2, rnd, special, mask_id=3)
    assert inputs.tolist() == [[1, 3, 40, 22, 23, 3, 2]]
    assert labels.tolist() == [[IGNORE, 20, 21, 22, IGNORE, 24, IGNORE]]


def test_mask_tokens_proportions():
    """15 % chosen among non-special tokens; of those 80 % [MASK], 10 % random, 10 % unchanged.

    With n draws, each share is within 5 standard errors of its target (a false alarm has
    probability below 1e-6 per check); specials are never chosen; random ids are never special.
    """
    config = BertConfig(**CFG)
    g = torch.Generator().manual_seed(0)
    B, T = 400, 250
    ids = torch.randint(4, config.vocab_size, (B, T), generator=g)
    ids[:, 0], ids[:, -1], ids[:, 100] = config.cls_id, config.sep_id, config.sep_id
    ids[:50, 200:] = config.pad_id
    special = torch.isin(ids, torch.tensor(config.special_ids))
    inputs, labels = mask_tokens(ids, config, generator=g)
    chosen = labels != IGNORE

    def within(count, n, p):
        assert abs(count / n - p) < 5 * math.sqrt(p * (1 - p) / n), (count / n, p)

    assert not (chosen & special).any() and torch.equal(inputs[special], ids[special])
    assert torch.equal(labels[chosen], ids[chosen])
    n_chosen = int(chosen.sum())
    within(n_chosen, int((~special).sum()), 0.15)
    masked = chosen & (inputs == config.mask_id)
    changed = chosen & (inputs != config.mask_id) & (inputs != ids)
    kept = chosen & (inputs == ids)
    within(int(masked.sum()), n_chosen, 0.8)
    # a random token can land on the original by chance (1 in 57 here), so "unchanged" is a bit above 10 %
    p_same = 1 / (config.vocab_size - len(config.special_ids))
    within(int(changed.sum()), n_chosen, 0.1 * (1 - p_same))
    within(int(kept.sum()), n_chosen, 0.1 + 0.1 * p_same)
    assert not torch.isin(inputs[changed], torch.tensor(config.special_ids)).any()
    assert torch.equal(inputs[~chosen], ids[~chosen])  # nothing outside the 15 % is touched


def test_mlm_rule_errors():
    ids = torch.zeros(2, 3, dtype=torch.long)
    u = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="select_u must be a tensor of input_ids' shape"):
        mlm_rule(ids, torch.zeros(3, 2), u, ids, u.bool(), 3)
    with pytest.raises(TypeError, match="special must be a bool"):
        mlm_rule(ids, u, u, ids, u, 3)
    with pytest.raises(ValueError, match="mask_share \\+ random_share"):
        mlm_rule(ids, u, u, ids, u.bool(), 3, mask_share=0.95, random_share=0.1)


# ------------------------------------------------------------------ [CLS]/[SEP], NSP, the classifier
def test_encode_pair_truncates_longest_first():
    config = BertConfig(**CFG)
    ids, types = encode_pair(list(range(10, 20)), [30, 31], config, max_len=10)
    assert ids == [1, 10, 11, 12, 13, 14, 2, 30, 31, 2] and types == [0] * 7 + [1] * 3
    ids, types = encode_pair([7], None, config)
    assert ids == [1, 7, 2] and types == [0, 0, 0]
    with pytest.raises(ValueError, match="no room"):
        encode_pair([1], [2], config, max_len=4)


def test_nsp_pairs():
    docs = [list(range(0, 100)), list(range(1000, 1100)), list(range(2000, 2100))]
    pairs = nsp_pairs(docs, segment_len=8, n_pairs=2000, seed=1)
    labels = [lab for _, _, lab in pairs]
    assert abs(sum(labels) / len(labels) - 0.5) < 5 * math.sqrt(0.25 / len(labels))
    for a, b, lab in pairs:
        assert len(a) == len(b) == 8
        follows = b[0] == a[-1] + 1 and b[0] // 1000 == a[0] // 1000
        assert follows == (lab == 0)
    with pytest.raises(ValueError, match="at least 2 documents"):
        nsp_pairs(docs[:1], 8, 10)
