"""course_utils.decoding: beam search against a brute-force search, greedy, the cache, translate()."""

import itertools

import course_utils  # noqa: F401
import pytest
import torch

from course_utils.decoding import (
    beam_search,
    beam_step,
    greedy_decode,
    hf_length_penalty,
    length_penalty,
    search_beams,
    translate,
)
from course_utils.train import label_smoothed_cross_entropy
from course_utils.transformer import Seq2SeqTransformer, TransformerConfig
from course_utils.translation import make_batch, pad_batch
from test_transformer import _tiny  # the same tiny model as the model tests

torch.set_num_threads(1)


def test_beam_step_against_brute_force():
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(2, 3, generator=g)
    logp = torch.randn(2, 3, 5, generator=g).log_softmax(-1)
    best, parent, token = beam_step(scores, logp, 4)
    for b in range(2):
        cands = sorted(((float(scores[b, k] + logp[b, k, v]), k, v) for k in range(3) for v in range(5)), reverse=True)[
            :4
        ]
        assert [(k, v) for _, k, v in cands] == list(zip(parent[b].tolist(), token[b].tolist()))
        assert torch.allclose(best[b], torch.tensor([s for s, _, _ in cands]))
    s1, p1, t1 = beam_step(scores[0], logp[0], 4)
    assert torch.equal(p1, parent[0]) and torch.equal(t1, token[0])
    with pytest.raises(ValueError, match="beam_size"):
        beam_step(scores, logp, 16)


def _sequence_logprob(model, src, tokens):
    """log P(tokens | src) under the model, tokens given in full (EOS included if any)."""
    tgt = torch.tensor([[model.config.bos_id] + tokens[:-1]])
    with torch.no_grad():
        logp = model(src, tgt).log_softmax(-1)[0]
    return float(sum(logp[t, tokens[t]] for t in range(len(tokens))))


def test_beam_search_is_exhaustive_when_the_beam_holds_every_prefix():
    """With beam_size >= V^T, beam search keeps every prefix: its best equals brute-force search."""
    model = _tiny(seed=3, vocab_size=5)
    src = torch.tensor([[3, 4, 3, 2]])
    T, V, eos = 3, 5, model.config.eos_id
    candidates = []
    for n in range(1, T + 1):
        for seq in itertools.product(range(V), repeat=n):
            if eos in seq[:-1] or (n < T and seq[-1] != eos):
                continue  # finished exactly at its end, or cut at length T
            candidates.append((_sequence_logprob(model, src, list(seq)), list(seq)))
    best_score, best_seq = max(candidates)
    hyp, steps = beam_search(model, src, beam_size=V**T, alpha=0.0, max_new_tokens=T, trace=True)
    assert hyp[0] == [t for t in best_seq if t not in (0, 1, eos)]
    assert max(s for st in steps for s, f in zip(st["score"], st["finished"]) if f) == pytest.approx(
        best_score, abs=1e-5
    )


def test_beam_of_one_is_greedy_and_batched_equals_single():
    model = _tiny(seed=4)
    src = torch.tensor([[5, 6, 7, 8, 2], [9, 10, 2, 0, 0], [11, 2, 0, 0, 0]])
    greedy = greedy_decode(model, src, max_new_tokens=8)
    assert beam_search(model, src, beam_size=1, alpha=0.0, max_new_tokens=8) == greedy
    batched = beam_search(model, src, beam_size=3, max_new_tokens=8)
    singles = [
        beam_search(model, src[i : i + 1, : int((src[i] != 0).sum())], beam_size=3, max_new_tokens=8)[0]
        for i in range(3)
    ]
    assert batched == singles
    hyps, steps = beam_search(model, src[:1], beam_size=3, max_new_tokens=5, trace=True)
    assert steps and len(steps[0]["token"]) == 3 and all(p == 0 for p in steps[0]["parent"])
    with pytest.raises(ValueError, match="single sentence"):
        beam_search(model, src, trace=True)


def test_beam_scores_not_worse_than_greedy_on_model_probability():
    """Beam search optimises log P / lp; its winner must score at least greedy's hypothesis."""
    model = _tiny(seed=5)
    src = torch.tensor([[5, 6, 7, 8, 9, 2]])
    g = greedy_decode(model, src, max_new_tokens=6)[0]
    b = beam_search(model, src, beam_size=4, alpha=0.0, max_new_tokens=6)[0]
    if len(g) < 6 and len(b) < 6:  # both finished with EOS
        assert _sequence_logprob(model, src, b) >= _sequence_logprob(model, src, g) - 1e-5


def test_length_penalty():
    assert length_penalty(1, 0.6) == 1.0 and length_penalty(10, 0.0) == 1.0
    assert length_penalty(11, 1.0) == pytest.approx(16 / 6)
    with pytest.raises(ValueError, match="alpha"):
        length_penalty(3, -1)


def test_a_tiny_model_learns_to_copy_and_translate_decodes():
    """Real training signal: a 2+2-layer model learns to reverse short sequences, greedy and beam agree."""
    torch.manual_seed(0)
    config = TransformerConfig(
        vocab_size=12,
        d_model=32,
        n_heads=4,
        n_encoder_layers=2,
        n_decoder_layers=2,
        d_ff=64,
        dropout=0.0,
        pad_id=0,
        bos_id=1,
        eos_id=2,
    )
    model = Seq2SeqTransformer(config)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(250):
        xs = [torch.randint(3, 12, (int(torch.randint(2, 6, ())),)).tolist() for _ in range(32)]
        src, tgt_in, tgt_out = make_batch([(x, x[::-1]) for x in xs], config)
        loss = label_smoothed_cross_entropy(model(src, tgt_in), tgt_out, 0.0, ignore_index=config.pad_id)
        opt.zero_grad()
        loss.backward()
        opt.step()
    tests = [[3, 4, 5], [6, 7, 8, 9], [10, 11, 3, 4, 5]]
    src = pad_batch([x + [2] for x in tests], 0)
    assert greedy_decode(model, src) == [x[::-1] for x in tests]
    assert beam_search(model, src, beam_size=3) == [x[::-1] for x in tests]

    class Digits:  # a tokenizer: "3 4 5" <-> [3, 4, 5]
        encode = staticmethod(lambda s: [int(t) for t in s.split()])
        decode = staticmethod(lambda ids: " ".join(map(str, ids)))

    assert translate(model, Digits, ["3 4 5", "6 7 8 9"], beam_size=2) == ["5 4 3", "9 8 7 6"]
    with pytest.raises(TypeError, match="list of strings"):
        translate(model, Digits, "3 4 5")


@pytest.mark.parametrize("norm_first", [False, True])
def test_cached_decoding_equals_full_recompute(norm_first):
    model = _tiny(seed=6, norm_first=norm_first, vocab_size=30)
    src = torch.tensor([[5, 6, 7, 8, 2], [9, 10, 2, 0, 0], [11, 2, 0, 0, 0]])
    # step by step: the cached next-token scores equal the last row of a full decode
    memory, src_mask = model.encode(src)
    cache, ys = [], torch.full((3, 1), 1)
    with torch.no_grad():
        for _ in range(5):
            fast = model.decode_next(ys, memory, src_mask, cache)
            slow = model.decode(ys, memory, src_mask)[:, -1]
            assert torch.allclose(fast, slow, atol=1e-5)
            ys = torch.cat([ys, fast.argmax(-1, keepdim=True)], 1)
    assert greedy_decode(model, src, 10) == greedy_decode(model, src, 10, use_cache=False)
    assert beam_search(model, src, 3, max_new_tokens=10) == beam_search(
        model, src, 3, max_new_tokens=10, use_cache=False
    )


# ---------------------------------------------------------------- against Hugging Face's generate()


def _table_logits(prefix: tuple, vocab: int, seed: int, levels: int) -> torch.Tensor:
    """Fixed logits for a prefix (sentence id, tokens...): a seeded table, few distinct values so that ties occur."""
    h = seed
    for t in prefix:
        h = (h * 1_000_003 + int(t) + 7) % (2**31 - 1)
    g = torch.Generator().manual_seed(h)
    return torch.randint(0, levels, (vocab,), generator=g).float() * 0.7


def _hf_table_model(vocab: int, seed: int, levels: int):
    """A Hugging Face causal LM whose next-token logits are `_table_logits` of its whole input."""
    transformers = pytest.importorskip("transformers")
    from transformers.modeling_outputs import CausalLMOutput

    class TableLM(transformers.PreTrainedModel, transformers.GenerationMixin):
        config_class = transformers.PretrainedConfig
        main_input_name = "input_ids"

        def __init__(self, config):
            super().__init__(config)
            self.dummy = torch.nn.Parameter(torch.zeros(1))

        def prepare_inputs_for_generation(self, input_ids, **kwargs):
            return {"input_ids": input_ids}

        def forward(self, input_ids, **kwargs):
            rows = [_table_logits(tuple(r.tolist()), vocab, seed, levels) for r in input_ids]
            logits = torch.stack(rows)[:, None, :].expand(-1, input_ids.shape[1], -1)  # only the last is read
            return CausalLMOutput(logits=logits)

    config = transformers.PretrainedConfig(vocab_size=vocab, bos_token_id=0, eos_token_id=1, pad_token_id=1)
    return TableLM(config)


def _hf_winners(vocab, seed, levels, batch, k, alpha, early_stopping, max_new):
    model = _hf_table_model(vocab, seed, levels)
    prompt = torch.tensor([[0, 100 + b] for b in range(batch)])  # <s> and a sentence id
    out = model.generate(
        prompt,
        num_beams=k,
        length_penalty=alpha,
        early_stopping=early_stopping,
        max_new_tokens=max_new,
        do_sample=False,
        use_cache=False,
        return_dict_in_generate=True,
        output_scores=True,
        eos_token_id=1,
        pad_token_id=1,
    )
    winners = []
    for row, score in zip(out.sequences[:, 2:].tolist(), out.sequences_scores.tolist()):
        winners.append((row[: row.index(1) + 1] if 1 in row else row, score))
    return winners


def _our_winners(vocab, seed, levels, batch, k, alpha, early_stopping, max_new):
    def next_log_probs(prefixes, reorder):  # (B*K, t): <s> then tokens; row r belongs to sentence r // k
        rows = [(0, 100 + r // k) + tuple(p[1:].tolist()) for r, p in enumerate(prefixes)]
        return torch.stack([_table_logits(row, vocab, seed, levels) for row in rows]).log_softmax(-1)

    return search_beams(next_log_probs, batch, k, 0, 1, max_new, alpha, hf_length_penalty, early_stopping)


@pytest.mark.parametrize(
    "seed, levels, k, alpha, early_stopping",
    [
        (0, 3, 2, 1.0, False),
        (1, 3, 3, 0.0, False),
        (2, 2, 4, 2.0, False),
        (3, 4, 3, -1.0, False),
        (4, 3, 2, 1.0, True),
        (5, 2, 3, 0.5, True),
        (6, 3, 3, 1.0, "never"),
        (7, 2, 2, 3.0, "never"),
    ],
)
def test_search_beams_matches_hugging_face_generate(seed, levels, k, alpha, early_stopping):
    """Same winner and score as `generate(num_beams=k, length_penalty=alpha, early_stopping=...)` on fixed tables.

    The tables take only `levels` distinct logits, so candidates tie often: the tie-breaking
    (torch.topk over beam x token, earlier finished first) must agree too.
    """
    args = (8, seed, levels, 3, k, alpha, early_stopping, 7)  # vocab 8, 3 sentences, up to 7 new tokens
    ours, theirs = _our_winners(*args), _hf_winners(*args)
    assert [t for t, _ in ours] == [t for t, _ in theirs]
    assert [s for _, s in ours] == pytest.approx([s for _, s in theirs], abs=1e-4)
