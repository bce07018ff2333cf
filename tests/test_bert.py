"""course_utils.bert against transformers' BertForPreTraining (same weights, same outputs), the MLM
rule checked exactly and its proportions statistically, NSP pairs, parameter counts.
"""

import doctest
import math

import course_utils  # noqa: F401
import pytest
import torch

import course_utils.bert as bert_module
from course_utils.bert import (
    IGNORE,
    BertClassifier,
    BertConfig,
    BertForPreTraining,
    parameter_formula,
    encode_pair,
    mask_tokens,
    mlm_rule,
    nsp_pairs,
    to_hf_bert,
)
from course_utils.measure import count_parameters

CFG = dict(
    vocab_size=61,
    max_len=32,
    n_layers=2,
    n_heads=2,
    d_model=16,
    d_ff=40,
    dropout=0.0,
    pad_id=0,
    cls_id=1,
    sep_id=2,
    mask_id=3,
)


def small(seed=0, **kw):
    torch.manual_seed(seed)
    model = BertForPreTraining(BertConfig(**{**CFG, **kw}))
    with torch.no_grad():  # move every weight off its initial value (biases 0, LN 1)
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def batch(config):
    a, ta = encode_pair([5, 6, 7, 8, 9], [10, 11, 12], config)
    b, tb = encode_pair([13, 14], [15], config)
    pad = len(a) - len(b)
    x = torch.tensor([a, b + [config.pad_id] * pad])
    t = torch.tensor([ta, tb + [0] * pad])
    return x, t


def test_doctests():
    result = doctest.testmod(bert_module, raise_on_error=False)
    assert result.attempted >= 4 and result.failed == 0


@pytest.mark.parametrize("seed", [0, 1])
def test_outputs_equal_transformers_bert(seed):
    model = small(seed)
    hf = to_hf_bert(model)
    x, t = batch(model.config)
    real = x != model.config.pad_id
    with torch.no_grad():
        mlm, nsp = model(x, t)
        out = hf(input_ids=x, token_type_ids=t, attention_mask=real.long())
    assert torch.allclose(mlm[real], out.prediction_logits[real], atol=1e-4)  # padded positions are never used
    assert torch.allclose(nsp, out.seq_relationship_logits, atol=1e-4)


def test_padding_does_not_change_real_tokens():
    model = small(2)
    x, t = batch(model.config)
    short = x[1:, :6]  # the second row without its padding
    with torch.no_grad():
        padded = model(x[1:], t[1:])[0][:, :6]
        alone = model(short, t[1:, :6])[0]
    assert torch.allclose(padded, alone, atol=1e-5)


def test_parameter_counts_bert_base():
    """BERT-base: 110M in the paper; 109,482,240 for the encoder with pooler, 110,106,428 with both heads."""
    from transformers import BertConfig as HFConfig, BertForPreTraining as HFBert

    with torch.device("meta"):
        ours = BertForPreTraining(BertConfig())
        theirs = HFBert(HFConfig())
    n_ours = count_parameters(ours)
    assert n_ours == parameter_formula(BertConfig()) == sum(p.numel() for p in theirs.parameters())
    assert count_parameters(ours.bert) == parameter_formula(BertConfig(), heads=False) == 109_482_240
    assert abs(n_ours / 1e6 - 110) < 1


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


def test_classifier_from_pretrained_copies_the_encoder():
    pre = small(3)
    clf = BertClassifier.from_pretrained(pre, n_classes=6).eval()
    x, t = batch(pre.config)
    with torch.no_grad():
        assert torch.allclose(clf.bert(x, t)[1], pre.bert(x, t)[1])
        assert clf(x, t).shape == (2, 6)
    scratch = BertClassifier(pre.config, 6)
    assert not torch.allclose(scratch.bert.pooler.weight, pre.bert.pooler.weight)


def test_classifier_mean_pooling_averages_real_tokens_only():
    pre = small(3)
    clf = BertClassifier.from_pretrained(pre, n_classes=4, pooling="mean").eval()
    x, t = batch(pre.config)
    x[1, -2:] = pre.config.pad_id  # padding at the end of row 1
    with torch.no_grad():
        hidden, _ = clf.bert(x, t)
        real = x != pre.config.pad_id
        want = torch.stack([hidden[i][real[i]].mean(0) for i in range(len(x))])
        assert torch.allclose(clf(x, t), clf.head(want), atol=1e-6)
        assert not torch.allclose(clf(x, t), clf.head(clf.bert(x, t)[1]), atol=1e-4)  # not the [CLS] vector
    with pytest.raises(ValueError, match="pooling"):
        BertClassifier(pre.config, 4, pooling="max")


def test_pretraining_loss_counts_only_chosen_positions():
    model = small(4)
    x, t = batch(model.config)
    labels = torch.full_like(x, IGNORE)
    labels[0, 2], labels[1, 1] = 7, 13
    total, mlm, nsp = model.loss(x, t, labels, torch.tensor([0, 1]))
    logits, nsp_logits = model(x, t)
    ref = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE
    )
    assert torch.allclose(mlm, ref, atol=1e-5)
    assert torch.allclose(total, mlm + torch.nn.functional.cross_entropy(nsp_logits, torch.tensor([0, 1])), atol=1e-5)


@pytest.mark.parametrize(
    "call,err,words",
    [
        (lambda: BertConfig(d_model=30, n_heads=4), ValueError, "divisible"),
        (lambda: BertConfig(vocab_size=50), ValueError, "cls_id must be a token id"),
        (lambda: BertClassifier(BertConfig(**CFG), 1), ValueError, "n_classes"),
        (lambda: small()(torch.zeros(1, 40, dtype=torch.long)), ValueError, "max_len=32"),
        (
            lambda: small()(torch.ones(1, 4, dtype=torch.long), attention_mask=torch.ones(1, 4)),
            ValueError,
            "attention_mask must be bool",
        ),
    ],
)
def test_clear_errors(call, err, words):
    with pytest.raises(err, match=words):
        call()
