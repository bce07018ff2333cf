"""course_utils.train against references: the paper's formula, torch's cross-entropy, a real (tiny) fit."""

import itertools
import math
import time

import course_utils  # noqa: F401  (sets OMP_WAIT_POLICY before torch)
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils.train import (
    History,
    label_smoothed_cross_entropy,
    load_checkpoint,
    save_checkpoint,
    train_for,
    warmup_lr,
    warmup_scheduler,
)


# ----------------------------------------------------------------------------- schedule
def test_warmup_lr_matches_the_paper_formula():
    d, w = 512, 4000
    for step in (1, 10, 3999, 4000, 4001, 100_000):
        assert warmup_lr(step, d, w) == pytest.approx(d**-0.5 * min(step**-0.5, step * w**-1.5))
    peak = max(range(1, 20_000), key=lambda s: warmup_lr(s, d, w))
    assert peak == w, "the rate peaks at the end of warm-up"
    assert warmup_lr(4 * w, d, w) == pytest.approx(warmup_lr(w, d, w) / 2), "1/sqrt(step) decay after warm-up"


@pytest.mark.parametrize("bad", [dict(step=0), dict(d_model=0), dict(warmup=-1), dict(factor=0.0)])
def test_warmup_lr_rejects_bad_input(bad):
    args = dict(step=1, d_model=512, warmup=10, factor=1.0) | bad
    with pytest.raises(ValueError, match=next(iter(bad))):
        warmup_lr(**args)
    with pytest.raises(TypeError, match="step"):
        warmup_lr(1.5, 512, 10)


def test_scheduler_drives_the_optimizer():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=1.0)
    sched = warmup_scheduler(opt, 64, 5, factor=2.0)
    seen = []
    for _ in range(8):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([warmup_lr(s, 64, 5, 2.0) for s in range(1, 9)])
    with pytest.raises(ValueError, match="lr=1.0"):
        warmup_scheduler(torch.optim.Adam([p], lr=1e-3), 64, 5)


# ----------------------------------------------------------------------------- label smoothing
def test_without_padding_equals_torch_label_smoothing():
    g = torch.Generator().manual_seed(0)
    logits, target = torch.randn(3, 7, 11, generator=g), torch.randint(0, 11, (3, 7), generator=g)
    for eps in (0.0, 0.1, 0.3):
        ours = label_smoothed_cross_entropy(logits, target, eps)
        ref = F.cross_entropy(logits.reshape(-1, 11), target.reshape(-1), label_smoothing=eps)
        assert torch.allclose(ours, ref, atol=1e-6), eps


def test_padding_positions_ignored_and_padding_class_gets_no_mass():
    g = torch.Generator().manual_seed(1)
    V, pad = 9, 0
    logits, target = torch.randn(4, 6, V, generator=g), torch.randint(1, V, (4, 6), generator=g)
    target[:, 4:] = pad
    # eps = 0: plain cross-entropy with ignore_index
    assert torch.allclose(
        label_smoothed_cross_entropy(logits, target, 0.0, ignore_index=pad),
        F.cross_entropy(logits.reshape(-1, V), target.reshape(-1), ignore_index=pad),
        atol=1e-6,
    )
    # eps > 0: the explicit target distribution q, with q(pad) = 0
    eps = 0.2
    q = torch.full((4, 6, V), eps / (V - 1))
    q[..., pad] = 0.0
    q.scatter_add_(-1, target[..., None], torch.full((4, 6, 1), 1 - eps))
    assert torch.allclose(q.sum(-1), torch.ones(4, 6))
    per_token = -(q * logits.log_softmax(-1)).sum(-1)
    keep = target != pad
    ref = per_token[keep].mean()
    ours = label_smoothed_cross_entropy(logits, target, eps, ignore_index=pad)
    assert torch.allclose(ours, ref, atol=1e-6)
    assert torch.allclose(
        label_smoothed_cross_entropy(logits, target, eps, ignore_index=pad, reduction="sum"),
        per_token[keep].sum(),
        atol=1e-5,
    )
    # torch's version spreads mass on the padding class too: a different number
    torch_ls = F.cross_entropy(logits.reshape(-1, V), target.reshape(-1), ignore_index=pad, label_smoothing=eps)
    assert not torch.allclose(ours, torch_ls, atol=1e-4)


@settings(max_examples=30, deadline=None)
@given(eps=st.floats(0.0, 0.9), V=st.integers(3, 20), seed=st.integers(0, 10_000))
def test_smoothed_loss_is_minimised_by_the_smoothed_distribution(eps, V, seed):
    """Property: the loss is a cross-entropy, so logits = log q give the minimum, H(q)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(1, V, (1,), generator=g)
    q = torch.full((V,), eps / (V - 1))
    q[0] = 0.0
    q[y] += 1 - eps
    best = label_smoothed_cross_entropy(q.clamp_min(1e-30).log()[None], y, eps, ignore_index=0)
    entropy = -(q[q > 0] * q[q > 0].log()).sum()
    assert torch.allclose(best, entropy, atol=1e-4)
    other = label_smoothed_cross_entropy(torch.randn(1, V, generator=g), y, eps, ignore_index=0)
    assert other >= best - 1e-5


def test_label_smoothing_rejects_bad_input():
    logits, target = torch.zeros(2, 5), torch.tensor([1, 2])
    with pytest.raises(ValueError, match="smoothing"):
        label_smoothed_cross_entropy(logits, target, 1.0)
    with pytest.raises(ValueError, match="leading dims"):
        label_smoothed_cross_entropy(logits, torch.tensor([1, 2, 3]))
    with pytest.raises(TypeError, match="target"):
        label_smoothed_cross_entropy(logits, target.float())
    with pytest.raises(TypeError, match="logits"):
        label_smoothed_cross_entropy(target, target)


# ----------------------------------------------------------------------------- loop and checkpoints
def _regression():
    torch.manual_seed(0)
    x = torch.randn(256, 4)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0])
    batches = [(x[i : i + 32], y[i : i + 32]) for i in range(0, 256, 32)]
    model = torch.nn.Linear(4, 1)

    def loss_fn(m, batch):
        xb, yb = batch
        return F.mse_loss(m(xb).squeeze(-1), yb), len(yb)

    return model, batches, loss_fn, (x, y)


def test_train_for_learns_and_records_history():
    model, batches, loss_fn, (x, y) = _regression()
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    hist = train_for(
        model,
        opt,
        itertools.cycle(batches),
        loss_fn,
        max_steps=300,
        progress=False,
        eval_fn=lambda m: {"valid_loss": float(F.mse_loss(m(x).squeeze(-1), y))},
        eval_every=1e9,
    )
    assert isinstance(hist, History) and hist.steps == 300 and len(hist.train) == 300
    assert hist.tokens == 300 * 32 and hist.tokens_per_s > 0
    assert hist.train[-1]["loss"] < 0.01 * hist.train[0]["loss"]
    assert hist.eval and hist.eval[-1]["valid_loss"] < 1e-2 and hist.eval[-1]["step"] == 300
    xs, ys = hist.smoothed(window=10)
    assert len(xs) == len(ys) == 300


def test_train_for_time_budget_and_errors():
    model, batches, loss_fn, _ = _regression()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    hist = train_for(model, opt, itertools.cycle(batches), loss_fn, seconds=0.3, progress=False)
    assert 0.3 <= hist.seconds < 5 and hist.steps > 1
    with pytest.raises(ValueError, match="seconds"):
        train_for(model, opt, batches, loss_fn)
    blow_up = torch.optim.SGD(model.parameters(), lr=1e6)
    with pytest.raises(FloatingPointError, match="learning rate"):
        train_for(model, blow_up, itertools.cycle(batches), loss_fn, max_steps=200, progress=False, clip_grad=None)


def test_train_for_cooldown_ramps_to_zero_on_top_of_the_schedule():
    model, batches, loss_fn, _ = _regression()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    hist = train_for(model, opt, itertools.cycle(batches), loss_fn, max_steps=100, cooldown=0.2, progress=False)
    lrs = [r["lr"] for r in hist.train]
    assert lrs[:80] == pytest.approx([0.01] * 80)  # untouched before the last 20 %
    assert lrs[80:] == pytest.approx([0.01 * (20 - k) / 20 for k in range(20)])  # linear, last step 0.0005
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01)  # restored: a later call resumes
    opt = torch.optim.SGD(model.parameters(), lr=1.0)  # with a scheduler: scaled, not compounded
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.01 / (1 + step))
    hist = train_for(
        model, opt, itertools.cycle(batches), loss_fn, max_steps=10, cooldown=0.5, scheduler=sched, progress=False
    )
    expect = [0.01 / (1 + k) * min(1.0, (10 - k) / 5) for k in range(10)]
    assert [r["lr"] for r in hist.train] == pytest.approx(expect)
    with pytest.raises(ValueError, match="cooldown"):
        train_for(model, opt, batches, loss_fn, max_steps=5, cooldown=1.0)


def test_train_for_lr_by_progress_follows_the_budget_from_the_first_step():
    model, batches, loss_fn, _ = _regression()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    warm_cos = lambda f: max(f / 0.1, 1e-3) if f < 0.1 else 0.5 * (1 + math.cos(math.pi * (f - 0.1) / 0.9))
    hist = train_for(
        model, opt, itertools.cycle(batches), loss_fn, max_steps=20, lr_by_progress=warm_cos, progress=False
    )
    expect = [0.01 * warm_cos(k / 20) for k in range(20)]  # step k runs at the fraction done before it
    assert [r["lr"] for r in hist.train] == pytest.approx(expect)
    assert hist.train[0]["lr"] == pytest.approx(1e-5)  # lr_by_progress(0.0): not the bare rate
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01)  # restored, as with cooldown
    # on a time budget the fraction is the clock, evaluation excluded: slow evaluations do not eat the schedule
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    seen, wall = [], time.perf_counter()
    hist = train_for(
        model,
        opt,
        itertools.cycle(batches),
        loss_fn,
        seconds=0.4,
        progress=False,
        eval_every=0.05,
        eval_fn=lambda m: (time.sleep(0.05), {})[1],
        lr_by_progress=lambda f: seen.append(f) or 1.0,
    )
    wall = time.perf_counter() - wall
    pauses = 0.05 * len(hist.eval)  # the last one comes after the budget
    assert seen[0] == 0.0 and all(a <= b for a, b in zip(seen, seen[1:])) and 1.0 <= seen[-1] < 1.25
    assert len(hist.eval) >= 3 and wall >= 0.4 + pauses - 0.05, "evaluation pauses are not training time"
    with pytest.raises(TypeError, match="lr_by_progress"):
        train_for(model, opt, batches, loss_fn, max_steps=5, lr_by_progress=0.5)


def test_history_extend_shifts_steps():
    a, b = (
        History(train=[{"step": 1, "time": 0.5, "loss": 2.0}], steps=1, seconds=1.0, tokens=10),
        History(train=[{"step": 1, "time": 0.2, "loss": 1.0}], steps=1, seconds=0.5, tokens=5),
    )
    a.extend(b)
    assert [r["step"] for r in a.train] == [1, 2] and a.train[1]["time"] == pytest.approx(1.2)
    assert a.tokens == 15 and a.steps == 2


def test_checkpoint_round_trip_fp32_and_fp16(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    path = save_checkpoint(tmp_path / "sub" / "m.pt", model, {"d": 8}, bleu=12.5)
    twin = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    payload = load_checkpoint(path, twin)
    assert payload["config"] == {"d": 8} and payload["notes"] == {"bleu": 12.5}
    x = torch.randn(5, 8)
    assert torch.equal(model(x), twin(x))
    half = save_checkpoint(tmp_path / "h.pt", model, half=True)
    assert half.stat().st_size < path.stat().st_size
    load_checkpoint(half, twin)
    assert next(twin.parameters()).dtype == torch.float32
    assert torch.allclose(model(x), twin(x), atol=1e-2)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(TypeError, match="config"):
        save_checkpoint(tmp_path / "x.pt", model, config=[1, 2])
