"""Notebook 07's fine-tuning study: which Austen novel is a 28-word passage from? One recipe for every way to adapt.

Shared by notebook 07 (one seed, run live) and `scripts/lora_seeds.py` (several seeds, a learning
rate chosen on validation for every method), so both cut the same passages and train the same way:

    data = which_novel(load_austen(), seed=0, n_val=30)          # balanced train / val / test passages
    probe = linear_probe(feat_train, y_train, lr=1e-2, steps=300, seed=0)
    model = fresh_classifier(encoder, probe, seed=0)             # LP-FT: every run starts from the probe's head
    info = finetune(model, x, m, y, lr=2e-3, steps=200, batch_size=16, b_ratio=8, seed=0)
"""

from __future__ import annotations

import copy
import itertools
import math
import random
import re
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from course_utils.checks import check_int, check_number
from course_utils.device import seed_everything
from course_utils.lora import lora_param_groups
from course_utils.measure import peak_memory
from course_utils.train import train_for

Item = tuple[str, int]  # (passage, label: the novel's index)


def passages(text: str, n_words: int) -> list[str]:
    """Consecutive, non-overlapping passages of n_words words; chapter headings removed.

    >>> passages("CHAPTER I It is a truth universally acknowledged", 3)
    ['It is a', 'truth universally acknowledged']
    """
    check_int("passages", "n_words", n_words, low=1)
    words = re.sub(r"\b(CHAPTER|Chapter|VOLUME)\s+[IVXLC\d]+\b", " ", text).split()
    return [" ".join(words[i : i + n_words]) for i in range(0, len(words) - n_words + 1, n_words)]


def split_book(ps: list[str], n_stretches: int = 20, test_every: int = 5) -> tuple[list[str], list[str]]:
    """Cut a book's passages into stretches; every `test_every`-th stretch is test, so no test passage has a training neighbour.

    >>> split_book([str(i) for i in range(10)], n_stretches=5, test_every=5)
    (['0', '1', '2', '3', '4', '5', '6', '7'], ['8', '9'])
    """
    check_int("split_book", "n_stretches", n_stretches, low=1)
    check_int("split_book", "test_every", test_every, low=2)
    size = math.ceil(len(ps) / n_stretches)
    train = [p for i, p in enumerate(ps) if (i // size) % test_every != test_every - 1]
    test = [p for i, p in enumerate(ps) if (i // size) % test_every == test_every - 1]
    return train, test


def which_novel(
    books: dict[str, str],
    seed: int = 0,
    passage_words: int = 28,
    n_train: int = 200,
    n_test: int = 250,
    n_val: int = 0,
) -> dict[str, list]:
    """The study's data: n_train / n_test (and n_val) passages per novel, classes balanced.

    Returns {"train": [(passage, label)], "val": [...], "test": [...], "pretrain": [passage]}.
    Test passages come from the test stretches (`split_book`); validation passages from the
    training stretches, never one that is also a training passage (they choose a learning rate,
    the test passages report it). "pretrain" is every training-stretch passage (the fallback
    encoder pre-trains on it). The validation draw has its own random stream, so asking for it
    leaves train and test as they are for the same seed.
    """
    if not books:
        raise ValueError("which_novel: no books; pass course_utils.data.load_austen()")
    for name, n in (("n_train", n_train), ("n_test", n_test)):
        check_int("which_novel", name, n, low=1)
    check_int("which_novel", "n_val", n_val, low=0)
    rng = random.Random(seed)
    data: dict[str, list] = {"train": [], "val": [], "test": [], "pretrain": []}
    for label, title in enumerate(books):
        tr, te = split_book(passages(books[title], passage_words))
        if len(tr) < n_train + n_val or len(te) < n_test:
            raise ValueError(
                f"which_novel: {title!r} has {len(tr)} training and {len(te)} test passages of {passage_words} words; "
                f"asked for {n_train} + {n_val} and {n_test}: ask for fewer or shorter passages"
            )
        chosen = rng.sample(tr, n_train)
        data["train"] += [(p, label) for p in chosen]
        data["test"] += [(p, label) for p in rng.sample(te, n_test)]
        data["pretrain"] += tr
        if n_val:
            taken = set(chosen)
            rest = [p for p in tr if p not in taken]
            data["val"] += [(p, label) for p in random.Random(1000 * seed + 7919 + label).sample(rest, n_val)]
    rng.shuffle(data["train"])
    return data


class HFEncoder(nn.Module):
    """A `transformers` encoder as (ids, mask) -> token vectors (B, T, D)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=ids, attention_mask=mask.long()).last_hidden_state


class Classifier(nn.Module):
    """Encoder -> mean over real tokens -> linear head: (B, T) ids -> (B, n_classes) logits."""

    def __init__(self, encoder: nn.Module, head: nn.Linear):
        super().__init__()
        self.encoder, self.head = encoder, head

    def features(self, ids, mask):  # (B, T) -> (B, D)
        h = self.encoder(ids, mask)
        m = mask.unsqueeze(-1).to(h.dtype)
        return (h * m).sum(1) / m.sum(1).clamp_min(1)

    def forward(self, ids, mask):
        return self.head(self.features(ids, mask))


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def batched_features(model: Classifier, X: torch.Tensor, M: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """(N, D) mean-pooled sentence vectors of N passages (ids X, mask M), computed in batches on the model's device."""
    model.eval()
    dev = _device(model)
    return torch.cat(
        [model.features(X[i : i + batch].to(dev), M[i : i + batch].to(dev)).cpu() for i in range(0, len(X), batch)]
    )


@torch.no_grad()
def accuracy(model: Classifier, X: torch.Tensor, M: torch.Tensor, Y: torch.Tensor, batch: int = 64) -> float:
    """The share of passages whose highest logit is their label."""
    if not len(X) == len(M) == len(Y) > 0:
        raise ValueError(
            f"accuracy: X, M and Y must hold the same number (> 0) of passages, got {len(X)}, {len(M)}, {len(Y)}"
        )
    model.eval()
    dev = _device(model)
    hits = sum(
        (model(X[i : i + batch].to(dev), M[i : i + batch].to(dev)).argmax(-1).cpu() == Y[i : i + batch]).sum().item()
        for i in range(0, len(X), batch)
    )
    return hits / len(Y)


def linear_probe(
    features: torch.Tensor, labels: torch.Tensor, n_classes: int, lr: float, steps: int, seed: int
) -> nn.Linear:
    """A linear head fitted by full-batch AdamW (weight decay 0.01) on frozen (N, D) sentence vectors."""
    check_number("linear_probe", "lr", lr, low=0, low_open=True)
    check_int("linear_probe", "steps", steps, low=1)
    seed_everything(seed)
    probe = nn.Linear(features.shape[1], n_classes)
    opt = torch.optim.AdamW(probe.parameters(), lr=lr, weight_decay=0.01)
    train_for(
        probe,
        opt,
        itertools.repeat((features, labels)),
        lambda m, b: (F.cross_entropy(m(b[0]), b[1]), len(b[1])),
        max_steps=steps,
        clip_grad=None,
        desc="linear probe on frozen features",
    )
    return probe


def fresh_classifier(encoder: nn.Module, probe: nn.Linear, seed: int) -> Classifier:
    """A copy of the pretrained encoder with a copy of the linear probe's head, everything trainable (LP-FT's start).

    Seeds the global generator too, so adapters created next (`apply_lora`) start the same way for the same seed.
    """
    seed_everything(seed)
    head = nn.Linear(probe.in_features, probe.out_features)
    head.load_state_dict(probe.state_dict())
    return Classifier(copy.deepcopy(encoder), head).to(_device(encoder)).requires_grad_(True)


def finetune(
    model: Classifier,
    X: torch.Tensor,
    M: torch.Tensor,
    Y: torch.Tensor,
    lr: float,
    steps: int,
    batch_size: int,
    b_ratio: float,
    seed: int,
    desc: str = "fine-tuning",
) -> dict:
    """`steps` AdamW steps (one-cycle schedule, no weight decay) on batches in a seeded order; trains `model` in place.

    LoRA's B matrices learn at lr * b_ratio (LoRA+, `lora_param_groups`); full fine-tuning has no
    B, so b_ratio does not touch it. The same seed gives every method the same batches. Returns
    {"peak_bytes": what torch allocated at most during the first step (activations, gradients,
    Adam's states), "adam_bytes": Adam's states, "seconds": the training time}.
    """
    check_number("finetune", "lr", lr, low=0, low_open=True)
    check_int("finetune", "steps", steps, low=1)
    check_int("finetune", "batch_size", batch_size, low=1)
    groups = lora_param_groups(model, lr, b_ratio=b_ratio)
    opt = torch.optim.AdamW(groups, lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in groups], total_steps=steps, pct_start=0.1)
    order = torch.randperm(len(Y), generator=torch.Generator().manual_seed(seed))
    dev = _device(model)
    model.train()

    def step(i):
        idx = order[(i * batch_size + torch.arange(batch_size)) % len(order)]
        loss = F.cross_entropy(model(X[idx].to(dev), M[idx].to(dev)), Y[idx].to(dev))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        return loss.item()

    start = time.perf_counter()
    peak, _ = peak_memory(lambda: step(0), dev)  # activations + gradients + Adam states appear in step 1
    for i in tqdm(range(1, steps), desc=desc, leave=False):
        step(i)
    seconds = time.perf_counter() - start
    adam = sum(t.numel() * t.element_size() for s in opt.state.values() for t in s.values() if torch.is_tensor(t))
    return {"peak_bytes": peak, "adam_bytes": adam, "seconds": seconds}
