"""course_utils.alignment: whole-word groups of byte-level tokens (no "�") and word-level attention maps."""

import pytest
import torch

from course_utils.alignment import group_attention, token_groups
from course_utils.bytelevel import ByteLevelBPE


@pytest.fixture(scope="module")
def tok():
    t = ByteLevelBPE(special_tokens=["<pad>", "<bos>", "<eos>"])
    t.train("die Äußerlichkeiten sind groß, die Straße ist schön. " * 20 + "Über Öl und Ärger. " * 5, vocab_size=300)
    return t


def test_groups_are_words_decoded_whole(tok):
    text = "Äußerlichkeiten sind groß, Übermaß!"
    ids = tok.encode(text) + [tok.special_tokens["<eos>"]]
    groups = token_groups(tok, ids)
    labels = [label for label, _ in groups]
    assert labels == ["Äußerlichkeiten", "sind", "groß", ",", "Übermaß", "!", "<eos>"]
    assert all("\ufffd" not in label for label in labels)
    assert [p for _, ps in groups for p in ps] == list(range(len(ids)))
    # the labels of single tokens would show the cut characters: that is what grouping fixes
    assert any("\ufffd" in tok.decode([i]) for i in tok.encode("Übermaß"))


def test_a_token_across_a_word_boundary_keeps_both_words_together(tok):
    ids = [tok.special_tokens["<bos>"]] + tok.encode("ab") + [tok.encode(" ")[0]] + tok.encode("cd")
    groups = token_groups(tok, ids)
    assert [label for label, _ in groups] == ["<bos>", "ab", "cd"]
    glued = list(tok.vocab)[-1]  # the last merge: some multi-byte token
    assert token_groups(tok, [glued])[0][1] == [0]


def test_group_attention_sums_columns_and_averages_rows():
    w = torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.2, 0.7]])
    tgt = [("a", [0, 1])]
    src = [("x", [0]), ("yz", [1, 2])]
    g = group_attention(w, tgt, src)
    assert torch.allclose(g, torch.tensor([[0.3, 0.7]]))
    assert torch.allclose(group_attention(w, [("a", [0]), ("b", [1])], src).sum(-1), torch.ones(2))
    with pytest.raises(ValueError, match="cover positions"):
        group_attention(w, tgt, [("x", [0, 1])])


def test_pieces_stay_apart_unless_a_character_is_cut(tok):
    ids = tok.encode("Äußer")
    pieces = token_groups(tok, ids, unit="piece")
    assert "".join(label for label, _ in pieces) == "Äußer" and all("\ufffd" not in label for label, _ in pieces)
    assert len(pieces) >= 2 and [p for _, ps in pieces for p in ps] == list(range(len(ids)))
    with pytest.raises(ValueError, match="unit"):
        token_groups(tok, ids, unit="letter")
