"""course_utils.llama against transformers' Llama: the pieces (RMSNorm, GQA's key/value expansion), a tiny
model written to a GGUF file here (both libraries load the same file), and SmolLM2-135M itself: logits to
1e-4, the same greedy tokens, with and without our KV cache."""

import doctest

import course_utils  # noqa: F401
import gguf
import numpy as np
import pytest
import torch
from gguf.quants import quantize as gguf_quantize

import course_utils.llama as llama_module
from course_utils.language_models import load_smollm, smollm_files
from course_utils.llama import (
    LlamaConfig,
    RMSNorm,
    expand_kv_heads,
    hf_llama_config,
    hf_rows,
    load_gguf,
    to_hf_llama,
)

transformers = pytest.importorskip("transformers")
TINY = dict(vocab_size=96, max_len=64, n_layers=2, n_heads=4, n_kv_heads=2, d_model=64, d_ff=96)


def test_doctests():
    assert doctest.testmod(llama_module).failed == 0


def test_rmsnorm_equals_torch():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 16) * 4
    ours, ref = RMSNorm(16, eps=1e-6), torch.nn.RMSNorm(16, eps=1e-6)
    with torch.no_grad():
        ours.weight.normal_()
        ref.weight.copy_(ours.weight)
    torch.testing.assert_close(ours(x), ref(x))


def test_expand_kv_heads_equals_transformers_repeat_kv():
    from transformers.models.llama.modeling_llama import repeat_kv

    x = torch.randn(2, 3, 5, 4)
    for n_rep in (1, 3):
        assert torch.equal(expand_kv_heads(x, n_rep), repeat_kv(x, n_rep))


def test_config_refuses_bad_sizes():
    with pytest.raises(ValueError, match="multiple of n_kv_heads"):
        LlamaConfig(n_heads=9, n_kv_heads=2)
    with pytest.raises(ValueError, match="even size"):
        LlamaConfig(d_model=60, n_heads=4, n_kv_heads=1)
    with pytest.raises(ValueError, match="rope_angles"):
        LlamaConfig(rope_angles="float16")
    with pytest.raises(ValueError, match="reads 'llama'"):
        LlamaConfig.from_gguf({"general.architecture": "gpt2"})


def hf_permute(w: np.ndarray, n_heads: int) -> np.ndarray:
    """llama.cpp's convert script: transformers' q/k rows ("rotate half") -> the file's pairs (2i, 2i+1)."""
    return w.reshape(n_heads, 2, w.shape[0] // n_heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    """A random 2-layer Llama from transformers, written to GGUF as llama.cpp does (q/k permuted, Q4_1 / Q8_0)."""
    c = LlamaConfig(**TINY)
    torch.manual_seed(0)
    hf = transformers.LlamaForCausalLM(hf_llama_config(c))  # only its random weights are used: the file says the sizes
    folder = tmp_path_factory.mktemp("tiny_llama")
    w = gguf.GGUFWriter(str(folder / "tiny.gguf"), "llama")
    for key, value in (
        ("context_length", c.max_len),
        ("embedding_length", c.d_model),
        ("feed_forward_length", c.d_ff),
        ("block_count", c.n_layers),
        ("attention.head_count", c.n_heads),
        ("attention.head_count_kv", c.n_kv_heads),
        ("vocab_size", c.vocab_size),
    ):
        w.add_uint32(f"llama.{key}", value)
    w.add_float32("llama.rope.freq_base", c.rope_base)
    w.add_float32("llama.attention.layer_norm_rms_epsilon", c.norm_eps)
    names = {"embed_tokens": "token_embd", "norm": "output_norm"}
    parts = dict(
        q_proj="attn_q", k_proj="attn_k", v_proj="attn_v", o_proj="attn_output", gate_proj="ffn_gate", up_proj="ffn_up"
    )
    parts.update(down_proj="ffn_down", input_layernorm="attn_norm", post_attention_layernorm="ffn_norm")
    for name, p in hf.model.state_dict().items():
        x = p.detach().numpy().astype(np.float32)
        if name.startswith("layers."):
            _, i, *_, part, _ = name.split(".")
            target = f"blk.{i}.{parts[part]}.weight"
            if part in ("q_proj", "k_proj"):
                x = hf_permute(x, c.n_heads if part == "q_proj" else c.n_kv_heads)
        else:
            target = names[name.split(".")[0]] + ".weight"
        kind = gguf.GGMLQuantizationType.F32 if x.ndim == 1 else gguf.GGMLQuantizationType.Q4_1
        if target == "token_embd.weight":
            kind = gguf.GGMLQuantizationType.Q8_0
        q = x if kind == gguf.GGMLQuantizationType.F32 else gguf_quantize(x, kind)
        w.add_tensor(target, q, raw_shape=q.shape, raw_dtype=kind)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return folder / "tiny.gguf"


def test_tiny_gguf_logits_equal_transformers(tiny_file):
    ours = load_gguf(tiny_file)
    ref = transformers.AutoModelForCausalLM.from_pretrained(
        tiny_file.parent, gguf_file=tiny_file.name, dtype=torch.float32
    ).eval()
    assert ours.config == LlamaConfig(**TINY, norm_eps=float(np.float32(1e-5)))  # the file stores float32
    assert ours.lm_head.weight is ours.embed.weight
    x = torch.randint(0, TINY["vocab_size"], (3, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(ours(x)[0], ref(x).logits, atol=1e-5, rtol=0)
        hf_q = ref.model.layers[0].self_attn.q_proj.weight
        torch.testing.assert_close(ours.blocks[0].attn.q_proj.weight[hf_rows(4, 16)], hf_q, atol=0, rtol=0)


def test_cache_gives_the_same_tokens_and_logits(tiny_file):
    model = load_gguf(tiny_file)
    x = torch.randint(0, TINY["vocab_size"], (2, 7), generator=torch.Generator().manual_seed(2))
    a = model.generate(x, 20, use_cache=True)
    b = model.generate(x, 20, use_cache=False)
    assert torch.equal(a, b) and a.shape == (2, 27)
    g = torch.Generator().manual_seed(3)
    s1 = model.generate(x, 10, temperature=1.0, top_k=5, generator=g)
    g.manual_seed(3)
    assert torch.equal(s1, model.generate(x, 10, temperature=1.0, top_k=5, use_cache=False, generator=g))
    with pytest.raises(ValueError, match="exceed max_len"):
        model.generate(x, 60)


def test_generation_stops_once_every_row_produced_stop_id(tiny_file):
    model = load_gguf(tiny_file)
    x = torch.randint(0, TINY["vocab_size"], (2, 7), generator=torch.Generator().manual_seed(2))
    free = model.generate(x, 20)[:, 7:]  # (2, 20) greedy, no stop
    for stop in free[0].tolist()[:5]:  # a token row 0 produces: generation ends when row 1 has produced it too
        out = model.generate(x, 20, stop_id=stop)[:, 7:]
        first = [row.index(stop) if stop in row else 19 for row in free.tolist()]
        assert out.shape[1] == max(first) + 1, f"stop_id={stop}: ran {out.shape[1]} steps, expected {max(first) + 1}"
        assert torch.equal(out, free[:, : out.shape[1]]), "a stop id must not change the tokens before it"


def test_first_layers_only(tiny_file):
    one = load_gguf(tiny_file, n_layers=1)
    full = load_gguf(tiny_file)
    assert len(one.blocks) == 1
    x = torch.arange(10)[None]
    with torch.no_grad():
        h_full = full.embed(x)
        h_full = full.blocks[0](h_full, torch.arange(10))
        torch.testing.assert_close(one.hidden_states(x, final_norm=False), h_full, atol=0, rtol=0)
    with pytest.raises(ValueError, match="n_layers"):
        load_gguf(tiny_file, n_layers=3)


@pytest.fixture(scope="module")
def smollm():
    folder, name = smollm_files()
    if folder is None:
        pytest.skip(name)
    ref, tokenizer = load_smollm()
    return load_gguf(folder / name), ref, tokenizer


def test_smollm2_logits_and_greedy_tokens_equal_transformers(smollm):
    ours, ref, tok = smollm
    prompts = ["It is a truth universally acknowledged, that a single man", "Hello!", "The capital of France is"]
    ids = [tok(p)["input_ids"] for p in prompts]
    T = max(map(len, ids))
    x = torch.tensor([i + [0] * (T - len(i)) for i in ids])  # right padding: no real token sees a pad
    mask = torch.tensor([[1] * len(i) + [0] * (T - len(i)) for i in ids])
    with torch.no_grad():
        a, b = ours(x)[0], ref(input_ids=x, attention_mask=mask).logits
    for row, i in enumerate(ids):
        assert float((a[row, : len(i)] - b[row, : len(i)]).abs().max()) <= 1e-4
    p = torch.tensor([ids[0]])
    greedy = ours.generate(p, 50)
    assert torch.equal(greedy, ours.generate(p, 50, use_cache=False))
    assert torch.equal(greedy, ref.generate(p, max_new_tokens=50, do_sample=False))


def test_to_hf_llama_equals_the_model_transformers_loads(tiny_file):
    ours = load_gguf(tiny_file)
    ref = transformers.AutoModelForCausalLM.from_pretrained(
        tiny_file.parent, gguf_file=tiny_file.name, dtype=torch.float32
    ).eval()
    hf = to_hf_llama(ours)
    for name, p in ref.state_dict().items():
        assert torch.equal(hf.state_dict()[name], p), name
    x = torch.randint(0, TINY["vocab_size"], (2, 30), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(hf(x).logits, ref(x).logits, atol=0, rtol=0)
    with pytest.raises(TypeError, match="must be a Llama"):
        to_hf_llama(ref)
