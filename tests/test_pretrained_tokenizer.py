"""Our byte-level BPE with a pretrained model's merges: ByteLevelBPE.from_merges replays a merge list, and
PretrainedTokenizer encodes all of Austen to exactly the ids of SmolLM2's own tokenizer, decodes back, and
applies its chat template by hand."""

import doctest

import course_utils  # noqa: F401
import pytest

import course_utils.pretrained_tokenizer as pretrained_module
from course_utils.bytelevel import ByteLevelBPE
from course_utils.data import load_austen
from course_utils.gguf_file import read_gguf
from course_utils.language_models import smollm_files
from course_utils.pretrained_tokenizer import PretrainedTokenizer

transformers = pytest.importorskip("transformers")


def test_doctests():
    assert doctest.testmod(pretrained_module).failed == 0


def test_from_merges_replays_a_trained_tokenizer():
    text = load_austen()["Persuasion"][:40_000]
    trained = ByteLevelBPE(special_tokens=["<|endoftext|>"]).train(text, vocab_size=400)
    replayed = ByteLevelBPE.from_merges(trained.merges_as_strings(), special_tokens=["<|endoftext|>"])
    assert replayed.merges == trained.merges and replayed.special_tokens == trained.special_tokens
    sample = load_austen()["Emma"][:5_000] + "<|endoftext|>"
    assert replayed.encode(sample) == trained.encode(sample)
    with pytest.raises(ValueError, match="rank order"):
        ByteLevelBPE.from_merges([("Ġt", "he")])


def conversations():
    return [
        [{"role": "user", "content": "Who wrote Emma?"}],
        [
            {"role": "system", "content": "Answer in one word."},
            {"role": "user", "content": "Capital of France?"},
            {"role": "assistant", "content": "Paris."},
            {"role": "user", "content": "And of Italy?"},
        ],
    ]


@pytest.fixture(scope="module")
def smollm_tokenizers():
    folder, name = smollm_files()
    if folder is None:
        pytest.skip(name)
    ours = PretrainedTokenizer.from_gguf(read_gguf(folder / name))
    return ours, transformers.AutoTokenizer.from_pretrained(folder, gguf_file=name)


def test_all_of_austen_gives_the_models_ids(smollm_tokenizers):
    ours, ref = smollm_tokenizers
    for title, book in load_austen().items():
        ids = ours.encode(book)
        assert ids == ref(book)["input_ids"], title
        assert ours.decode(ids) == book, title
    assert len(ours) == 49152 and ours.special_tokens["<|im_end|>"] == 2


def test_chat_template_by_hand(smollm_tokenizers):
    ours, ref = smollm_tokenizers
    for messages in conversations():
        for gen in (True, False):
            text = ours.chat_prompt(messages, add_generation_prompt=gen)
            assert text == ref.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
            assert ours.encode(text) == ref(text)["input_ids"]


def test_clear_errors(smollm_tokenizers):
    ours, _ = smollm_tokenizers
    with pytest.raises(ValueError, match="lacks"):
        ours.encode("a\x04b")  # a control character SmolLM2's training text never had
    with pytest.raises(ValueError, match="not in the vocabulary"):
        ours.decode([49152])
    with pytest.raises(ValueError, match="at least one message"):
        ours.chat_prompt([])
    with pytest.raises(ValueError, match="'role' and 'content'"):
        ours.chat_prompt([{"role": "user"}])
