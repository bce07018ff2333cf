"""course_utils.transformer against torch's own transformer layers, a brute-force beam, and the paper's size."""
import itertools

import course_utils  # noqa: F401
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from course_utils.transformer import (DecoderLayer, EncoderLayer, LayerNorm, Seq2SeqTransformer, TransformerConfig,
                                      batch_by_length, beam_search, beam_step, count_parameters, decoder_self_mask,
                                      greedy_decode, length_penalty, make_batch, pad_batch, translate)

torch.set_num_threads(1)


def test_layer_norm_equals_torch():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 16, generator=g) * 3 + 1
    ours, ref = LayerNorm(16), nn.LayerNorm(16)
    with torch.no_grad():
        ref.weight.normal_(generator=g)
        ref.bias.normal_(generator=g)
    ours.load_state_dict(ref.state_dict())
    assert torch.allclose(ours(x), ref(x), atol=1e-5)


def _padding(B, T, lengths):
    return torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]   # True = real token


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_encoder_layer_equals_torch(norm_first, activation):
    torch.manual_seed(0)
    ref = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True, norm_first=norm_first,
                                     activation=activation)
    ours = EncoderLayer.from_torch(ref)
    x = torch.randn(3, 7, 32)
    real = _padding(3, 7, [7, 5, 2])
    expected = ref(x, src_key_padding_mask=~real)                  # torch: True = blocked
    got, w = ours(x, real[:, None, :])                             # ours: True = may attend
    assert torch.allclose(got[real], expected[real], atol=1e-5)
    assert w.shape == (3, 4, 7, 7) and torch.all(w[..., ~real[0]] == 0)


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_equals_torch(norm_first):
    torch.manual_seed(1)
    ref = nn.TransformerDecoderLayer(32, 4, 64, dropout=0.0, batch_first=True, norm_first=norm_first)
    ours = DecoderLayer.from_torch(ref)
    x, memory = torch.randn(2, 6, 32), torch.randn(2, 9, 32)
    tgt_real, src_real = _padding(2, 6, [6, 4]), _padding(2, 9, [9, 3])
    expected = ref(x, memory, tgt_mask=torch.ones(6, 6, dtype=torch.bool).triu(1), tgt_is_causal=True,
                   tgt_key_padding_mask=~tgt_real, memory_key_padding_mask=~src_real)
    tgt_ids = torch.where(tgt_real, 5, 0)
    got, w_self, w_cross = ours(x, memory, decoder_self_mask(tgt_ids, 0), src_real[:, None, :])
    assert torch.allclose(got[tgt_real], expected[tgt_real], atol=1e-5)
    assert w_cross.shape == (2, 4, 6, 9) and torch.all(w_cross[1, :, :, 3:] == 0)
    assert torch.all(w_self.triu(1) == 0), "no attention to future positions"


def test_from_torch_rejects_other_modules():
    with pytest.raises(TypeError, match="TransformerEncoderLayer"):
        EncoderLayer.from_torch(nn.Linear(2, 2))
    with pytest.raises(TypeError, match="TransformerDecoderLayer"):
        DecoderLayer.from_torch(nn.TransformerEncoderLayer(8, 2))


def test_decoder_self_mask():
    tgt = torch.tensor([[4, 5, 6, 0], [7, 0, 0, 0]])
    m = decoder_self_mask(tgt, pad_id=0)
    assert m.shape == (2, 4, 4) and m.dtype == torch.bool
    assert m[0, 3].tolist() == [True, True, True, False]
    assert m[1].tolist() == [[True, False, False, False]] * 4
    with pytest.raises(TypeError, match="tgt"):
        decoder_self_mask(tgt.float(), 0)


def test_base_config_parameter_count():
    """The paper's base model: our count, exactly, and torch's nn.Transformer as the reference for the layers."""
    cfg = TransformerConfig()
    with torch.device("meta"):
        model = Seq2SeqTransformer(cfg)
        ref = nn.Transformer(512, 8, 6, 6, 2048, batch_first=True)
    ours = count_parameters(model)
    embed = 37_000 * 512
    # nn.Transformer adds a final LayerNorm after each stack (2 x 2 x 512); post-LN has none.
    assert ours - embed + 2 * 2 * 512 == count_parameters(ref)
    assert ours == 63_082_496
    assert abs(ours - 65e6) / 65e6 < 0.05, "within 5 % of the paper's ~65M"


def _tiny(seed=0, **kw):
    torch.manual_seed(seed)
    cfg = TransformerConfig(**(dict(vocab_size=13, d_model=16, n_heads=2, n_encoder_layers=2, n_decoder_layers=2,
                                    d_ff=32, dropout=0.0, pad_id=0, bos_id=1, eos_id=2) | kw))
    return Seq2SeqTransformer(cfg).eval()


def test_model_shapes_tying_and_padding_invariance():
    model = _tiny()
    assert model.lm_head is None and count_parameters(model) < count_parameters(_tiny(tie_embeddings=False))
    src = torch.tensor([[5, 6, 7, 2], [8, 9, 2, 0]])
    tgt = torch.tensor([[1, 5, 6], [1, 7, 0]])
    logits, att = model(src, tgt, return_attention=True)
    assert logits.shape == (2, 3, 13)
    assert len(att["cross"]) == 2 and att["cross"][0].shape == (2, 2, 3, 4)
    # more padding on the source must not change the result for the real positions
    src_padded = torch.cat([src, torch.zeros(2, 3, dtype=torch.long)], 1)
    assert torch.allclose(model(src_padded, tgt), logits, atol=1e-5)
    # the decoder is causal: changing a later target token leaves earlier logits alone
    tgt2 = tgt.clone()
    tgt2[0, 2] = 9
    assert torch.allclose(model(src, tgt2)[0, :2], logits[0, :2], atol=1e-6)
    with pytest.raises(TypeError, match="src"):
        model(src.float(), tgt)
    with pytest.raises(ValueError, match="batch size"):
        model(src, tgt[:1])


@pytest.mark.parametrize("bad", [dict(d_model=30, n_heads=4), dict(dropout=1.0), dict(pad_id=1, bos_id=1),
                                 dict(eos_id=40_000), dict(activation="tanh"), dict(vocab_size=0)])
def test_config_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        TransformerConfig(**bad)


def test_beam_step_against_brute_force():
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(2, 3, generator=g)
    logp = torch.randn(2, 3, 5, generator=g).log_softmax(-1)
    best, parent, token = beam_step(scores, logp, 4)
    for b in range(2):
        cands = sorted(((float(scores[b, k] + logp[b, k, v]), k, v) for k in range(3) for v in range(5)), reverse=True)[:4]
        assert [(k, v) for _, k, v in cands] == list(zip(parent[b].tolist(), token[b].tolist()))
        assert torch.allclose(best[b], torch.tensor([s for s, _, _ in cands]))
    s1, p1, t1 = beam_step(scores[0], logp[0], 4)
    assert torch.equal(p1, parent[0]) and torch.equal(t1, token[0])
    with pytest.raises(ValueError, match="beam_size"):
        beam_step(scores, logp, 16)


def _sequence_logprob(model, src, tokens):
    """log P(tokens | src) under the model, tokens given in full (EOS included if any)."""
    tgt = torch.tensor([[model.cfg.bos_id] + tokens[:-1]])
    with torch.no_grad():
        logp = model(src, tgt).log_softmax(-1)[0]
    return float(sum(logp[t, tokens[t]] for t in range(len(tokens))))


def test_beam_search_is_exhaustive_when_the_beam_holds_every_prefix():
    """With beam_size >= V^T, beam search keeps every prefix: its best equals brute-force search."""
    model = _tiny(seed=3, vocab_size=5)
    src = torch.tensor([[3, 4, 3, 2]])
    T, V, eos = 3, 5, model.cfg.eos_id
    candidates = []
    for n in range(1, T + 1):
        for seq in itertools.product(range(V), repeat=n):
            if eos in seq[:-1] or (n < T and seq[-1] != eos):
                continue                                   # finished exactly at its end, or cut at length T
            candidates.append((_sequence_logprob(model, src, list(seq)), list(seq)))
    best_score, best_seq = max(candidates)
    hyp, steps = beam_search(model, src, beam_size=V ** T, alpha=0.0, max_new_tokens=T, trace=True)
    assert max(steps[-1]["score"]) == pytest.approx(best_score, abs=1e-5)
    assert hyp[0] == [t for t in best_seq if t not in (0, 1, eos)]


def test_beam_of_one_is_greedy_and_batched_equals_single():
    model = _tiny(seed=4)
    src = torch.tensor([[5, 6, 7, 8, 2], [9, 10, 2, 0, 0], [11, 2, 0, 0, 0]])
    greedy = greedy_decode(model, src, max_new_tokens=8)
    assert beam_search(model, src, beam_size=1, alpha=0.0, max_new_tokens=8) == greedy
    batched = beam_search(model, src, beam_size=3, max_new_tokens=8)
    singles = [beam_search(model, src[i:i + 1, : int((src[i] != 0).sum())], beam_size=3, max_new_tokens=8)[0]
               for i in range(3)]
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
    if len(g) < 6 and len(b) < 6:   # both finished with EOS
        assert _sequence_logprob(model, src, b) >= _sequence_logprob(model, src, g) - 1e-5


def test_length_penalty():
    assert length_penalty(1, 0.6) == 1.0 and length_penalty(10, 0.0) == 1.0
    assert length_penalty(11, 1.0) == pytest.approx(16 / 6)
    with pytest.raises(ValueError, match="alpha"):
        length_penalty(3, -1)


@settings(max_examples=40, deadline=None)
@given(lengths=st.lists(st.integers(1, 30), min_size=1, max_size=60), max_tokens=st.integers(30, 200),
       seed=st.integers(0, 100))
def test_batch_by_length_properties(lengths, max_tokens, seed):
    batches = batch_by_length(lengths, max_tokens, shuffle=True, seed=seed)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(len(lengths))), "every example exactly once"
    for b in batches:
        assert len(b) * max(lengths[i] for i in b) <= max_tokens
    assert batch_by_length(lengths, max_tokens, seed=seed) == batches, "same seed, same batches"


def test_batch_helpers():
    assert pad_batch([[1], [2, 3]], 0).tolist() == [[1, 0], [2, 3]]
    cfg = TransformerConfig(vocab_size=20, pad_id=0, bos_id=1, eos_id=2)
    src, tgt_in, tgt_out = make_batch([([5, 6], [7]), ([8], [9, 10])], cfg)
    assert src.tolist() == [[5, 6, 2], [8, 2, 0]]
    assert tgt_in.tolist() == [[1, 7, 0], [1, 9, 10]] and tgt_out.tolist() == [[7, 2, 0], [9, 10, 2]]
    with pytest.raises(ValueError, match="max_tokens"):
        batch_by_length([3, 50], 40)


def test_a_tiny_model_learns_to_copy_and_translate_decodes():
    """Real training signal: a 2+2-layer model learns to reverse short sequences, greedy and beam agree."""
    from course_utils.train import label_smoothed_cross_entropy

    torch.manual_seed(0)
    cfg = TransformerConfig(vocab_size=12, d_model=32, n_heads=4, n_encoder_layers=2, n_decoder_layers=2, d_ff=64,
                            dropout=0.0, pad_id=0, bos_id=1, eos_id=2)
    model = Seq2SeqTransformer(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(250):
        xs = [torch.randint(3, 12, (int(torch.randint(2, 6, ())),)).tolist() for _ in range(32)]
        src, tgt_in, tgt_out = make_batch([(x, x[::-1]) for x in xs], cfg)
        loss = label_smoothed_cross_entropy(model(src, tgt_in), tgt_out, 0.0, ignore_index=cfg.pad_id)
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
        for t in range(5):
            fast = model.decode_next(ys, memory, src_mask, cache)
            slow = model.decode(ys, memory, src_mask)[:, -1]
            assert torch.allclose(fast, slow, atol=1e-5)
            ys = torch.cat([ys, fast.argmax(-1, keepdim=True)], 1)
    assert greedy_decode(model, src, 10) == greedy_decode(model, src, 10, use_cache=False)
    assert beam_search(model, src, 3, max_new_tokens=10) == beam_search(model, src, 3, max_new_tokens=10,
                                                                        use_cache=False)


def test_train_translator_script_end_to_end(tmp_path):
    """scripts/train_translator.py: a few steps of a tiny model, then everything it promises to write."""
    import importlib.util
    import json
    from pathlib import Path

    from course_utils.bytelevel import ByteLevelBPE
    from course_utils.train import load_checkpoint

    path = Path(__file__).resolve().parent.parent / "scripts" / "train_translator.py"
    spec = importlib.util.spec_from_file_location("train_translator", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "ref"
    results = script.main(["--out", str(out), "--vocab", "300", "--d-model", "16", "--heads", "2", "--layers", "1",
                           "--d-ff", "32", "--max-steps", "3", "--seconds", "60", "--beam", "2", "--limit-eval", "6",
                           "--max-new-tokens", "5", "--max-tokens", "400", "--short-seconds", "0.5"])
    for name in ("model.pt", "tokenizer.json", "tokenizer.vocab", "recipe.json", "test.tsv"):
        assert (out / name).exists(), name
    recipe = json.loads((out / "recipe.json").read_text())
    assert recipe["results"]["steps"] == 3 and recipe["recipe"]["vocab"] == 300 and recipe["recipe"]["short_seconds"] == 0.5
    payload = load_checkpoint(out / "model.pt")
    assert torch.load(out / "model.pt", weights_only=True)["state_dict"]["embed.weight"].dtype == torch.float16
    model = Seq2SeqTransformer(TransformerConfig(**payload["config"]))
    model.load_state_dict(payload["state_dict"])
    assert len(ByteLevelBPE.load(out / "tokenizer.json")) == 300
    rows = (out / "test.tsv").read_text(encoding="utf-8").splitlines()
    assert len(rows) == 7 and results["test_sentences"] == 6
    # re-scoring the saved fp16 file (--eval-only) reproduces the scores: they describe what ships
    again = script.main(["--out", str(out), "--eval-only", "--beam", "2", "--limit-eval", "6", "--max-new-tokens", "5"])
    assert again["test_bleu"] == results["test_bleu"] and again["steps"] == 3
    assert (out / "test.tsv").read_text(encoding="utf-8").splitlines() == rows
    with pytest.raises(FileNotFoundError, match="train first"):
        script.main(["--out", str(tmp_path / "empty"), "--eval-only"])


def test_curriculum_batches_start_with_the_shorter_half_then_use_all():
    import time
    from itertools import islice

    from course_utils.transformer import curriculum_batches, shorter_half

    encoded = [([5] * n, [6] * (n % 7 + 1)) for n in range(1, 41)]   # longer sides 1..40, median 21
    short = shorter_half(encoded)
    assert max(max(len(x), len(y)) for x, y in short) == 21 and len(short) == 21
    cfg = TransformerConfig(vocab_size=10, pad_id=0, bos_id=1, eos_id=2, d_model=8, n_heads=2, n_encoder_layers=1,
                            n_decoder_layers=1, d_ff=16, max_len=64)
    first = list(islice(curriculum_batches(encoded, cfg, 200, short_seconds=3600), 30))
    assert max(src.shape[1] for src, _, _ in first) <= 21 + 1, "the curriculum let a long pair through"
    timed = curriculum_batches(encoded, cfg, 200, short_seconds=0.05)
    next(timed)                      # the clock starts at the first batch
    time.sleep(0.1)
    assert max(src.shape[1] for src, _, _ in islice(timed, 30)) == 40 + 1, "the curriculum did not end on time"
    off = list(islice(curriculum_batches(encoded, cfg, 200, short_seconds=0), 30))
    assert max(src.shape[1] for src, _, _ in off) == 40 + 1, "short_seconds=0 must use every pair"
    with pytest.raises(ValueError, match="short_seconds must be >= 0"):
        next(curriculum_batches(encoded, cfg, 200, short_seconds=-1))
    with pytest.raises(ValueError, match="no pairs given"):
        shorter_half([])
