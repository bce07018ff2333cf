"""course_utils.bert against transformers' BertForPreTraining (same weights, same outputs), parameter
counts, the classifier's pooling and the pre-training loss. The data side is in test_bert_data.py.
"""

import doctest

import course_utils  # noqa: F401
import pytest
import torch

import course_utils.bert as bert_module
from course_utils.bert import (
    BertForSpans,
    best_span,
    IGNORE,
    BertClassifier,
    BertConfig,
    BertForPreTraining,
    parameter_formula,
    to_hf_bert,
)
from course_utils.bert_data import encode_pair
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
    assert result.attempted >= 1 and result.failed == 0


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


# ---------------------------------------------------------------------------------------------
# BERT's span head (question answering): the best span against brute force
# ---------------------------------------------------------------------------------------------
def test_best_span_equals_brute_force_over_allowed_spans():
    g = torch.Generator().manual_seed(0)
    for trial in range(300):
        T = int(torch.randint(2, 25, (1,), generator=g))
        start, end = torch.randn(T, generator=g), torch.randn(T, generator=g)
        allowed = torch.rand(T, generator=g) < 0.7
        allowed[int(torch.randint(T, (1,), generator=g))] = True
        max_len = int(torch.randint(1, 8, (1,), generator=g))
        spans = [(i, j) for i in range(T) for j in range(i, min(T, i + max_len)) if allowed[i] and allowed[j]]
        want = max(spans, key=lambda s: float(start[s[0]] + end[s[1]]))
        i, j, score = best_span(start, end, allowed, max_len)
        assert (i, j) == want, trial
        assert abs(score - float(start[i] + end[j])) < 1e-6


def test_best_span_refuses_an_empty_paragraph_and_shape_mismatch():
    with pytest.raises(ValueError, match="no position is allowed"):
        best_span(torch.zeros(4), torch.zeros(4), torch.zeros(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="share one shape"):
        best_span(torch.zeros(4), torch.zeros(5), torch.ones(4, dtype=torch.bool))


def test_span_head_scores_every_token_and_its_best_span_lies_in_the_paragraph():
    config = BertConfig(
        vocab_size=30, max_len=16, n_layers=1, n_heads=2, d_model=16, d_ff=32, cls_id=1, sep_id=2, mask_id=3
    )
    question, paragraph = [5, 6], [7, 8, 9, 10, 11]
    ids, types = encode_pair(question, paragraph, config)
    start, end = BertForSpans(config)(torch.tensor([ids]), torch.tensor([types]))
    assert start.shape == end.shape == (1, len(ids))
    allowed = torch.tensor([t == 1 for t in types]) & (torch.tensor(ids) != config.sep_id)
    i, j, _ = best_span(start[0].detach(), end[0].detach(), allowed)
    assert 4 <= i <= j <= 8  # inside the paragraph's positions
