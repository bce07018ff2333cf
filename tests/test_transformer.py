"""course_utils.transformer against torch's own transformer layers and the paper's size."""

import course_utils  # noqa: F401
import pytest
import torch
from torch import nn

from course_utils.measure import count_parameters
from course_utils.transformer import (
    DecoderLayer,
    EncoderLayer,
    LayerNorm,
    Seq2SeqTransformer,
    TransformerConfig,
    decoder_self_mask,
    residual,
)

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
    return torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]  # True = real token


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_encoder_layer_equals_torch(norm_first, activation):
    torch.manual_seed(0)
    ref = nn.TransformerEncoderLayer(
        32, 4, 64, dropout=0.0, batch_first=True, norm_first=norm_first, activation=activation
    )
    ours = EncoderLayer.from_torch(ref)
    x = torch.randn(3, 7, 32)
    real = _padding(3, 7, [7, 5, 2])
    expected = ref(x, src_key_padding_mask=~real)  # torch: True = blocked
    got, w = ours(x, real[:, None, :])  # ours: True = may attend
    assert torch.allclose(got[real], expected[real], atol=1e-5)
    assert w.shape == (3, 4, 7, 7) and torch.all(w[..., ~real[0]] == 0)


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_equals_torch(norm_first):
    torch.manual_seed(1)
    ref = nn.TransformerDecoderLayer(32, 4, 64, dropout=0.0, batch_first=True, norm_first=norm_first)
    ours = DecoderLayer.from_torch(ref)
    x, memory = torch.randn(2, 6, 32), torch.randn(2, 9, 32)
    tgt_real, src_real = _padding(2, 6, [6, 4]), _padding(2, 9, [9, 3])
    expected = ref(
        x,
        memory,
        tgt_mask=torch.ones(6, 6, dtype=torch.bool).triu(1),
        tgt_is_causal=True,
        tgt_key_padding_mask=~tgt_real,
        memory_key_padding_mask=~src_real,
    )
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


def test_residual_is_post_ln_or_pre_ln():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 8, generator=g)
    norm, drop = LayerNorm(8), nn.Identity()
    f = lambda h: (2 * h + 1, "extra")  # noqa: E731
    post, extra = residual(x, f, norm, drop, norm_first=False)
    pre, _ = residual(x, f, norm, drop, norm_first=True)
    assert extra == "extra" and torch.allclose(post, norm(x + 2 * x + 1)) and torch.allclose(pre, x + 2 * norm(x) + 1)


def test_layers_take_the_config_and_keep_the_checkpoint_names():
    """The shipped checkpoint's names (models/translator/model.pt): a rename here would break loading it."""
    config = TransformerConfig(d_model=16, n_heads=2, d_ff=32, norm_first=True)

    def parts(layer):
        return sorted({k.split(".")[0] for k in layer.state_dict()})

    assert parts(EncoderLayer(config)) == ["ff", "norm1", "norm2", "self_attn"]
    assert parts(DecoderLayer(config)) == ["cross_attn", "ff", "norm1", "norm2", "norm3", "self_attn"]
    assert "encoder.layers.0.ff.linear1.weight" in Seq2SeqTransformer(config).state_dict()
    torch_layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.2, norm_first=True, activation="gelu")
    layer = EncoderLayer.from_torch(torch_layer)
    assert layer.norm_first and layer.dropout.p == 0.2 and layer.ff.linear1.out_features == 32


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
    config = TransformerConfig()
    with torch.device("meta"):
        model = Seq2SeqTransformer(config)
        ref = nn.Transformer(512, 8, 6, 6, 2048, batch_first=True)
    ours = count_parameters(model)
    embed = 37_000 * 512
    # nn.Transformer adds a final LayerNorm after each stack (2 x 2 x 512); post-LN has none.
    assert ours - embed + 2 * 2 * 512 == count_parameters(ref)
    assert ours == 63_082_496
    assert abs(ours - 65e6) / 65e6 < 0.05, "within 5 % of the paper's ~65M"


def _tiny(seed=0, **kw):
    torch.manual_seed(seed)
    config = TransformerConfig(
        **(
            dict(
                vocab_size=13,
                d_model=16,
                n_heads=2,
                n_encoder_layers=2,
                n_decoder_layers=2,
                d_ff=32,
                dropout=0.0,
                pad_id=0,
                bos_id=1,
                eos_id=2,
            )
            | kw
        )
    )
    return Seq2SeqTransformer(config).eval()


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


@pytest.mark.parametrize(
    "bad",
    [
        dict(d_model=30, n_heads=4),
        dict(dropout=1.0),
        dict(pad_id=1, bos_id=1),
        dict(eos_id=40_000),
        dict(activation="tanh"),
        dict(vocab_size=0),
    ],
)
def test_config_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        TransformerConfig(**bad)
