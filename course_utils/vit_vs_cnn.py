"""Notebook 06's fair fight: a small ViT and a small CNN of the same size, trained on Fashion-MNIST by one recipe.

Shared by notebook 06 (the 270-second race, a live data-hunger point) and `scripts/data_hunger.py`
(every training-set size trained to convergence), so both train the same way:

    model = small_vit()                                   # or SmallCNN()
    history = train_model(model, X, y, seconds=270)       # AdamW, warm-up + cosine, label smoothing
    run = train_with_early_stopping(SmallCNN, X, y, X_val, y_val, epochs=20, min_steps=2000)
"""

from __future__ import annotations

import copy
import math
from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from course_utils.augment import random_crop_flip
from course_utils.checks import check_int, check_number
from course_utils.device import seed_everything
from course_utils.train import History, train_for
from course_utils.vit import ViT, ViTConfig

BATCH_SIZE, LR, WEIGHT_DECAY, WARMUP_FRACTION, LABEL_SMOOTHING = 128, 3e-3, 0.1, 0.05, 0.1  # the recipe


class SmallCNN(nn.Module):
    """conv(24) pool conv(48) pool conv(96) pool conv(width) -> global mean -> linear; all 3x3 convs."""

    def __init__(self, width: int = 112, n_classes: int = 10):
        super().__init__()

        def conv(c_in, c_out):
            return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]

        pool = nn.MaxPool2d(2)
        self.features = nn.Sequential(
            *conv(1, 24), pool, *conv(24, 48), pool, *conv(48, 96), pool, *conv(96, width)
        )  # (B, width, 3, 3)
        self.head = nn.Linear(width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, 28, 28) -> (B, classes)
        return self.head(self.features(x).mean(dim=(2, 3)))


def small_vit(patch_size: int = 7, d_model: int = 64, n_layers: int = 4, n_heads: int = 4, d_ff: int = 128) -> ViT:
    """The notebook's ViT for 28x28 grey images: patch 7 -> a 4x4 grid, 16 tokens + [class], ~139k parameters."""
    return ViT(
        ViTConfig(
            image_size=28,
            patch_size=patch_size,
            in_channels=1,
            n_classes=10,
            d_model=d_model,
            n_layers=n_layers,
            n_heads=n_heads,
            d_ff=d_ff,
        )
    )


def batches(X: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int, crop_pad: int = 0, device="cpu"):
    """Endless shuffled epochs of augmented batches (B, 1, 28, 28), labels (B,); the last partial batch is dropped."""
    if len(X) < batch_size:
        raise ValueError(f"batches: {len(X)} images cannot fill a batch of {batch_size}; use a smaller batch_size")
    g = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(X), generator=g)
        for i in range(0, len(X) - batch_size + 1, batch_size):
            idx = order[i : i + batch_size]
            yield random_crop_flip(X[idx], pad=crop_pad, generator=g).to(device), y[idx].to(device)


def warmup_cosine(progress: float, warmup: float = WARMUP_FRACTION) -> float:
    """lr multiplier at `progress`, the fraction of the budget done: linear warm-up, then cosine to 0 at the end.

    >>> [round(warmup_cosine(p), 3) for p in (0.0, 0.025, 0.05, 0.525, 1.0)]
    [0.001, 0.5, 1.0, 0.5, 0.0]
    """
    if progress < warmup:
        return max(progress / warmup, 1e-3)
    return 0.5 * (1 + math.cos(math.pi * min((progress - warmup) / (1 - warmup), 1.0)))


@torch.no_grad()
def accuracy(model: nn.Module, X: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    """The share of images (N, 1, 28, 28) whose highest logit is their label, on the model's device."""
    if len(X) != len(y) or len(X) == 0:
        raise ValueError(f"accuracy: X and y must hold the same number (> 0) of images, got {len(X)} and {len(y)}")
    model.eval()
    dev = next(model.parameters()).device
    hits = sum(
        (model(X[i : i + batch_size].to(dev)).argmax(-1).cpu() == y[i : i + batch_size]).sum().item()
        for i in range(0, len(X), batch_size)
    )
    return hits / len(X)


def train_model(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    seconds: Optional[float] = None,
    max_steps: Optional[int] = None,
    *,
    batch_size: int = BATCH_SIZE,
    lr: float = LR,
    weight_decay: float = WEIGHT_DECAY,
    warmup: float = WARMUP_FRACTION,
    label_smoothing: float = LABEL_SMOOTHING,
    crop_pad: int = 0,
    seed: int = 0,
    eval_fn: Optional[Callable[[nn.Module], dict]] = None,
    eval_every: float = 30,
    check: Optional[Callable[[nn.Module], None]] = None,
    check_every: int = 0,
    desc: str = "training",
    device="cpu",
) -> History:
    """AdamW (weight decay on matrices only), warm-up + cosine, label smoothing, for `seconds` or `max_steps`.

    With a time budget the learning rate follows train_for's clock (`warmup_cosine` of the
    fraction done); with a step budget it follows the steps, so the same seed gives the same model
    on any machine. eval_fn runs every `eval_every` seconds (a learning curve in time);
    check(model) every `check_every` steps (early stopping, in steps: the same on any machine).
    """
    if seconds is None and max_steps is None:
        raise ValueError("train_model: give a budget, seconds= (the race) or max_steps= (a step budget)")
    check_number("train_model", "lr", lr, low=0, low_open=True)
    model.to(device)

    def decays(n, p):
        return p.dim() > 1 and "pos_embed" not in n and "cls_token" not in n

    decay = [p for n, p in model.named_parameters() if decays(n, p)]
    rest = [p for n, p in model.named_parameters() if not decays(n, p)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}], lr=lr
    )
    sched, by_progress = None, lambda p: warmup_cosine(p, warmup)  # a time budget: the lr follows train_for's clock
    if max_steps:  # step-based cosine for the fixed-step runs

        def step_cosine(s: int) -> float:
            return min((s + 1) / max(1, warmup * max_steps), 0.5 * (1 + math.cos(math.pi * s / max_steps)))

        sched, by_progress = torch.optim.lr_scheduler.LambdaLR(opt, step_cosine), None

    def loss_fn(m, batch):
        xb, yb = batch
        return F.cross_entropy(m(xb), yb, label_smoothing=label_smoothing), len(yb)

    def checked(stream):  # check(model) after every check_every steps, before the next batch
        for i, b in enumerate(stream):
            if check is not None and check_every and i and i % check_every == 0:
                check(model)
                model.train()
            yield b

    return train_for(
        model,
        opt,
        checked(batches(X, y, batch_size, seed, crop_pad, device)),
        loss_fn,
        seconds=seconds,
        max_steps=max_steps,
        scheduler=sched,
        lr_by_progress=by_progress,
        eval_fn=eval_fn,
        eval_every=eval_every,
        clip_grad=1.0,
        desc=desc,
        progress=True,
    )


def train_with_early_stopping(
    make: Callable[[], nn.Module],
    X: torch.Tensor,
    y: torch.Tensor,
    X_val: torch.Tensor,
    y_val: torch.Tensor,
    epochs: int = 20,
    min_steps: int = 2000,
    evals: int = 20,
    seed: int = 0,
    desc: str = "training",
    device="cpu",
) -> dict:
    """Train a fresh `make()` to convergence and keep its best state by validation accuracy (early stopping).

    The budget is `epochs` passes over X, but at least `min_steps` steps, so a small training
    set is seen many times over (and can be memorised: the validation score shows when that
    starts). Validation runs `evals` times, evenly spaced; the model comes back in the state of
    its best score. Returns {"model", "val_acc", "best_step", "steps", "epochs", "curve": [(step, val_acc)]}.
    """
    for name, n in (("epochs", epochs), ("min_steps", min_steps), ("evals", evals)):
        check_int("train_with_early_stopping", name, n, low=1)
    batch = min(BATCH_SIZE, len(X))
    steps = max(min_steps, math.ceil(epochs * len(X) / batch))
    seed_everything(seed)
    model = make()
    every = max(1, steps // evals)
    curve, best = [], {"val_acc": -1.0}

    def check(m, step=None):  # every `every` steps, and at the end
        acc = accuracy(m, X_val, y_val)
        step = step or (len(curve) + 1) * every
        curve.append((step, acc))
        if acc > best["val_acc"]:
            best.update(val_acc=acc, best_step=step, state=copy.deepcopy(m.state_dict()))

    train_model(
        model,
        X,
        y,
        max_steps=steps,
        batch_size=batch,
        seed=seed,
        check=check,
        check_every=every,
        desc=desc,
        device=device,
    )
    check(model, steps)
    model.load_state_dict(best.pop("state"))
    return {"model": model.eval(), **best, "steps": steps, "epochs": steps * batch / len(X), "curve": curve}
