"""course_utils.lora against peft: the same weights give the same numbers, before and after training."""

import copy
import math

import course_utils  # noqa: F401  (sets OMP_WAIT_POLICY before torch)
import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils.lora import LoRALinear, apply_lora, lora_param_groups, merge_lora
from course_utils.measure import count_parameters
from course_utils.quant import QuantizedLinear, quantize_linears

peft = pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")


def tiny_bert(seed=0):
    torch.manual_seed(seed)
    config = transformers.BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=32,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return transformers.BertModel(config).eval()


def copy_adapters_into_peft(ours: nn.Module, theirs: nn.Module) -> int:
    """Copy each LoRALinear's A and B into the peft layer of the same name; return how many."""
    inner = theirs.base_model.model
    n = 0
    for name, m in ours.named_modules():
        if isinstance(m, LoRALinear):
            p = inner.get_submodule(name)
            with torch.no_grad():
                p.lora_A["default"].weight.copy_(m.lora_A)
                p.lora_B["default"].weight.copy_(m.lora_B)
            n += 1
    return n


def make_pair(targets=("query", "value"), r=4, alpha=8, random_b=True, rslora=False):
    base = tiny_bert()
    ours = copy.deepcopy(base)
    names = apply_lora(ours, list(targets), r=r, alpha=alpha, rslora=rslora)
    if random_b:  # B = 0 at init makes "same output" trivial; give B values too
        g = torch.Generator().manual_seed(1)
        for m in ours.modules():
            if isinstance(m, LoRALinear):
                with torch.no_grad():
                    m.lora_B.copy_(torch.randn(m.lora_B.shape, generator=g) * 0.1)
    config = peft.LoraConfig(r=r, lora_alpha=alpha, target_modules=list(targets), lora_dropout=0.0, use_rslora=rslora)
    theirs = peft.get_peft_model(copy.deepcopy(base), config)
    assert copy_adapters_into_peft(ours, theirs) == len(names) == 4
    return ours, theirs


def run(model, ids):
    return model(input_ids=ids).last_hidden_state


@pytest.mark.parametrize("random_b, rslora", [(False, False), (True, False), (True, True)])
def test_same_outputs_as_peft_before_and_after_one_adam_step(random_b, rslora):
    ours, theirs = make_pair(random_b=random_b, rslora=rslora, r=16 if rslora else 4)  # r=16: sqrt(r) != r / 4
    ids = torch.randint(0, 100, (3, 10), generator=torch.Generator().manual_seed(2))
    target = torch.randn(3, 10, 32, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(run(ours, ids), run(theirs, ids), atol=1e-6, rtol=0)
    assert count_parameters(ours, trainable_only=True) == sum(p.numel() for p in theirs.parameters() if p.requires_grad)
    for model in (ours, theirs):
        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
        loss = (run(model, ids) - target).square().mean()
        loss.backward()
        opt.step()
    after = run(ours, ids)
    torch.testing.assert_close(after, run(theirs, ids), atol=1e-6, rtol=0)
    assert not torch.allclose(after, run(tiny_bert(), ids), atol=1e-4), "the step should have changed the output"


def test_merge_agrees_with_peft_merge_and_unload():
    ours, theirs = make_pair()
    ids = torch.randint(0, 100, (2, 7), generator=torch.Generator().manual_seed(4))
    before = run(ours, ids)
    assert len(merge_lora(ours)) == 4
    assert not any(isinstance(m, LoRALinear) for m in ours.modules())
    merged_peft = theirs.merge_and_unload()
    torch.testing.assert_close(run(ours, ids), before, atol=1e-5, rtol=0)
    torch.testing.assert_close(run(ours, ids), run(merged_peft, ids), atol=1e-6, rtol=0)
    torch.testing.assert_close(
        ours.encoder.layer[0].attention.self.query.weight,
        merged_peft.encoder.layer[0].attention.self.query.weight,
        atol=1e-7,
        rtol=0,
    )


def test_initialisation_like_peft():
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(300, 200), r=8, alpha=16)
    assert layer.lora_A.shape == (8, 300) and layer.lora_B.shape == (200, 8)
    assert torch.count_nonzero(layer.lora_B) == 0, "B starts at zero"
    bound = 1 / math.sqrt(300)  # kaiming_uniform_(a=sqrt(5)) on fan_in 300
    assert layer.lora_A.abs().max() <= bound and layer.lora_A.abs().max() > 0.9 * bound
    assert layer.lora_A.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.1)
    assert layer.scaling == 2.0
    assert not layer.base.weight.requires_grad and not layer.base.bias.requires_grad
    x = torch.randn(4, 300)
    torch.testing.assert_close(layer(x), layer.base(x))  # B = 0: starts as the pretrained layer


@settings(max_examples=25, deadline=None)
@given(m=st.integers(2, 40), n=st.integers(2, 40), r=st.integers(1, 8), alpha=st.floats(0.5, 64))
def test_parameter_count_and_merge_property(m, n, r, alpha):
    r = min(r, m, n)
    layer = LoRALinear(nn.Linear(n, m), r=r, alpha=alpha)
    trainable, total = count_parameters(layer, trainable_only=True), count_parameters(layer)
    assert trainable == r * (m + n) and total == r * (m + n) + m * n + m
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(3, n)
    ref = x @ (layer.base.weight + alpha / r * layer.lora_B @ layer.lora_A).T + layer.base.bias
    torch.testing.assert_close(layer(x), ref, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(layer.merge()(x), ref, atol=1e-4, rtol=1e-4)


def test_qlora_on_a_quantized_base_equals_lora_on_its_dequantized_weight():
    torch.manual_seed(6)
    lin = nn.Linear(128, 64)
    q = QuantizedLinear.from_linear(lin, fmt="nf4")
    deq = nn.Linear(128, 64)
    with torch.no_grad():
        deq.weight.copy_(q.dequantized_weight())
        deq.bias.copy_(lin.bias)
    a, b = LoRALinear(q, r=4, alpha=8), LoRALinear(deq, r=4, alpha=8)
    with torch.no_grad():
        b.lora_A.copy_(a.lora_A)
        a.lora_B.normal_()
        b.lora_B.copy_(a.lora_B)
    x = torch.randn(5, 128)
    torch.testing.assert_close(a(x), b(x), atol=1e-5, rtol=1e-5)
    a(x).sum().backward()
    assert a.lora_A.grad is not None and a.lora_B.grad is not None
    assert isinstance(a.merge(), nn.Linear)
    torch.testing.assert_close(a.merge()(x), a(x), atol=1e-5, rtol=1e-5)


def test_apply_lora_on_a_quantized_model_trains_only_adapters():
    model = tiny_bert()
    quantize_linears(model, skip=("pooler.dense",))
    names = apply_lora(model, ["query", "value"], r=2, alpha=4)
    assert len(names) == 4
    assert all(isinstance(model.get_submodule(n).base, QuantizedLinear) for n in names)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(TypeError, match="base must be"):
        LoRALinear(nn.Conv1d(2, 2, 1), r=1, alpha=1)
    with pytest.raises(ValueError, match="r must be an int >= 1"):
        LoRALinear(nn.Linear(4, 4), r=0, alpha=1)
    with pytest.raises(ValueError, match="alpha"):
        LoRALinear(nn.Linear(4, 4), r=1, alpha=-1)
    with pytest.raises(ValueError, match="exceeds"):
        LoRALinear(nn.Linear(4, 4), r=5, alpha=1)
    with pytest.raises(ValueError, match="no linear layer matches"):
        apply_lora(tiny_bert(), ["q_proj"], r=2, alpha=4)
    with pytest.raises(ValueError, match="targets is empty"):
        apply_lora(tiny_bert(), [], r=2, alpha=4)


def test_lora_inside_torch_transformer_encoder_train_and_fused_inference_paths():
    torch.manual_seed(8)
    layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True)
    enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
    names = apply_lora(enc, ["linear1", "linear2", "self_attn.out_proj"], r=2, alpha=4)
    assert len(names) == 6
    with torch.no_grad():
        for m in enc.modules():
            if isinstance(m, LoRALinear):
                m.lora_B.normal_()
    x = torch.randn(3, 5, 32)
    slow = enc(x)  # grad enabled: the module-by-module path
    enc.eval()
    with torch.no_grad():
        fast = enc(x)  # inference: the fused path reads .weight
    torch.testing.assert_close(slow, fast, atol=1e-5, rtol=1e-5)
    slow.sum().backward()
    assert all(p.grad is not None for n, p in enc.named_parameters() if p.requires_grad)


def test_lora_plus_groups_give_b_its_own_rate_and_cover_every_trainable_tensor():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    apply_lora(model, ["0", "2"], r=2, alpha=4)
    model[2].base.bias.requires_grad_(True)  # a non-LoRA tensor that trains too
    groups = lora_param_groups(model, 1e-3, b_ratio=16)
    plain, fast = groups
    assert fast["lr"] == pytest.approx(1.6e-2) and plain["lr"] == 1e-3
    assert {id(p) for p in fast["params"]} == {id(model[0].lora_B), id(model[2].lora_B)}
    assert {id(p) for p in plain["params"]} == {id(model[0].lora_A), id(model[2].lora_A), id(model[2].base.bias)}
    # one SGD step moves B by exactly b_ratio times what the same gradient would at lr
    opt = torch.optim.SGD(groups, lr=1.0)
    x = torch.randn(4, 6)
    model(x).pow(2).sum().backward()
    before, grad = model[0].lora_B.detach().clone(), model[0].lora_B.grad.clone()
    opt.step()
    assert torch.allclose(model[0].lora_B.detach(), before - 1.6e-2 * grad)
    assert len(lora_param_groups(model, 1e-3)) == 2  # b_ratio 1: same rate, still two groups
    with pytest.raises(ValueError, match="b_ratio"):
        lora_param_groups(model, 1e-3, b_ratio=0)
    with pytest.raises(ValueError, match="no trainable"):
        lora_param_groups(nn.Linear(2, 2).requires_grad_(False), 1e-3)
