"""Training pieces every notebook reuses: the warm-up schedule, label smoothing, a timed loop, checkpoints.

Notebook 04 builds these while training a translator; 05-07 import them. Four ideas:

- `warmup_lr(step, d_model, warmup)`: the learning rate of Vaswani et al. (2017), eq. 3,
  lr = d_model^-0.5 * min(step^-0.5, step * warmup^-1.5): a linear ramp for `warmup`
  steps, then decay as 1/sqrt(step). `warmup_scheduler` wraps it for an optimizer.
- `label_smoothed_cross_entropy`: cross-entropy against (1 - eps) * one-hot + eps spread
  uniformly over the classes, with padding positions ignored and the padding class given
  no smoothing mass (it is never a right answer).
- `train_for`: a small loop that trains for a *time budget* in seconds (not a number of
  epochs: on a shared CPU an epoch takes anything from 1 to 5 minutes, a budget keeps a
  notebook's run time predictable), with a tqdm.auto progress bar, gradient clipping,
  periodic evaluation and a `History` of losses, learning rates and tokens per second.
  `cooldown=0.2` brings the learning rate linearly down to zero over the last 20 % of the
  budget: a model that must stop when the clock runs out ends at a lower loss that way
  (the "warm-up, stable, decay" recipe of Hu et al. 2024, MiniCPM).
- `save_checkpoint` / `load_checkpoint`: a state dict plus a JSON-able config and notes,
  optionally stored in float16 (half the bytes), under `build/` by default.

Concessions: the loop is single-device, single-process, no mixed precision and no
gradient accumulation; that keeps it to one screen, which is the point.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import torch
from torch import nn

from course_utils.checks import check_int, check_number

__all__ = [
    "warmup_lr",
    "warmup_scheduler",
    "label_smoothed_cross_entropy",
    "History",
    "train_for",
    "save_checkpoint",
    "load_checkpoint",
]


# ----------------------------------------------------------------------------- the learning-rate schedule
def warmup_lr(step: int, d_model: int, warmup: int, factor: float = 1.0) -> float:
    """lr(step) = factor * d_model^-0.5 * min(step^-0.5, step * warmup^-1.5), steps counted from 1.

    It rises linearly to its peak factor * (d_model * warmup)^-0.5 at step = warmup, then decays
    as 1/sqrt(step). Why small steps first: Adam's bias correction makes even its first update
    full-sized, but its variance estimate rests on a handful of gradients (Liu et al. 2020), and a
    post-LN transformer's gradients are largest at initialisation (Xiong et al. 2020); notebook 04
    trains post-LN with and without the warm-up to show it.

    >>> round(warmup_lr(4000, 512, 4000), 6)          # the paper's peak: 512^-0.5 * 4000^-0.5
    0.000699
    >>> warmup_lr(1, 512, 4000) < warmup_lr(2, 512, 4000)
    True
    """
    check_int("warmup_lr", "step", step)
    check_int("warmup_lr", "d_model", d_model)
    check_int("warmup_lr", "warmup", warmup)
    check_number("warmup_lr", "factor", factor, low=0, low_open=True)
    return factor * d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)


def warmup_scheduler(
    optimizer: torch.optim.Optimizer, d_model: int, warmup: int, factor: float = 1.0
) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR that sets every group's lr to `warmup_lr(step + 1, ...)`; build the optimizer with lr=1.0.

    (LambdaLR multiplies the optimizer's base lr by the lambda, so base lr 1.0 makes the lambda the rate.)
    """
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"warmup_scheduler: optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    for g in optimizer.param_groups:
        if g["lr"] != 1.0:
            raise ValueError(
                f"warmup_scheduler: create the optimizer with lr=1.0 (the schedule is the rate), got lr={g['lr']}"
            )
    warmup_lr(1, d_model, warmup, factor)  # validates the arguments now, not at the first step
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_lr(s + 1, d_model, warmup, factor))


# ----------------------------------------------------------------------------- label smoothing
def label_smoothed_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    smoothing: float = 0.1,
    ignore_index: int | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Cross-entropy of `logits` (..., V) against a smoothed target distribution, per real token.

    The target distribution for a position whose answer is y:
        q(c) = (1 - eps) * [c == y] + eps / V'   for every class c except the padding class,
        q(pad) = 0,
    where V' = V - 1 when `ignore_index` is a class (the padding token), else V' = V. The loss is
    -sum_c q(c) log p(c), averaged ("mean") or summed ("sum") over the positions whose target
    is not `ignore_index`. Without `ignore_index` this is exactly
    `F.cross_entropy(logits, target, label_smoothing=eps)`; with it, torch would still put eps/V
    on the padding class, a token the model should never produce.

    Why smooth: the model is asked for 90 % confidence instead of 100 %, so it stops pushing
    logits to infinity; perplexity gets worse, BLEU better (Szegedy et al. 2016; the paper uses 0.1).

    >>> logits = torch.zeros(1, 4); label_smoothed_cross_entropy(logits, torch.tensor([2]), 0.1, ignore_index=0)
    tensor(1.3863)
    """
    fn = "label_smoothed_cross_entropy"
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise TypeError(
            f"{fn}: logits must be a floating-point tensor (..., V), got {type(logits).__name__}"
            + (f" of dtype {logits.dtype}" if isinstance(logits, torch.Tensor) else "")
        )
    if not isinstance(target, torch.Tensor) or target.dtype not in (torch.int64, torch.int32):
        raise TypeError(
            f"{fn}: target must be an integer tensor of class ids, got "
            f"{getattr(target, 'dtype', type(target).__name__)}"
        )
    if logits.shape[:-1] != target.shape:
        raise ValueError(
            f"{fn}: logits (..., V) and target (...) must agree on the leading dims, got "
            f"logits {tuple(logits.shape)} and target {tuple(target.shape)}"
        )
    check_number(fn, "smoothing", smoothing, low=0, high=1, high_open=True)
    if reduction not in ("mean", "sum"):
        raise ValueError(f"{fn}: reduction must be 'mean' or 'sum', got {reduction!r}")
    V = logits.shape[-1]
    logp = logits.float().log_softmax(dim=-1).reshape(-1, V)  # (N, V)
    target = target.reshape(-1).long()  # (N,)
    keep = torch.ones_like(target, dtype=torch.bool) if ignore_index is None else target != ignore_index
    safe = target.masked_fill(~keep, 0)  # any valid class for the gather
    nll = -logp.gather(1, safe[:, None]).squeeze(1)  # -log p(y)       (N,)
    if ignore_index is None:
        uniform = -logp.mean(dim=-1)  # -mean_c log p(c)
    else:
        # no mass on padding: mean over the other V - 1 classes (a subtraction, not a copy of logp)
        uniform = -(logp.sum(dim=-1) - logp[:, ignore_index]) / (V - 1)
    loss = ((1.0 - smoothing) * nll + smoothing * uniform)[keep]  # real tokens only
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / keep.sum().clamp(min=1)


# ----------------------------------------------------------------------------- the loop
@dataclass
class History:
    """What `train_for` saw: one row per step and one per evaluation, plus totals.

    train rows: {"step", "time", "loss", "lr", "tokens"}; eval rows: {"step", "time", **eval_fn()}.
    """

    train: list[dict] = field(default_factory=list)
    eval: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    tokens: int = 0
    steps: int = 0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else float("nan")

    def smoothed(self, key: str = "loss", window: int = 20) -> tuple[list[int], list[float]]:
        """(steps, running mean of `key` over `window` steps) for a readable curve."""
        xs, ys, acc = [], [], []
        for row in self.train:
            acc.append(row[key])
            acc = acc[-window:]
            xs.append(row["step"])
            ys.append(sum(acc) / len(acc))
        return xs, ys

    def extend(self, other: "History") -> "History":
        """Append another run's rows (steps and times shifted after ours): resume-and-continue curves."""
        for rows, mine in ((other.train, self.train), (other.eval, self.eval)):
            for r in rows:
                mine.append({**r, "step": r["step"] + self.steps, "time": r["time"] + self.seconds})
        self.seconds += other.seconds
        self.tokens += other.tokens
        self.steps += other.steps
        return self


def train_for(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterable,
    loss_fn: Callable[[nn.Module, Any], tuple[torch.Tensor, int]],
    *,
    seconds: float | None = None,
    max_steps: int | None = None,
    scheduler=None,
    eval_fn: Callable[[nn.Module], Mapping[str, float]] | None = None,
    eval_every: float = 30.0,
    clip_grad: float | None = 1.0,
    cooldown: float = 0.0,
    progress: bool = True,
    desc: str = "training",
    lr_by_progress: Callable[[float], float] | None = None,
) -> History:
    """Train until `seconds` have passed, `max_steps` steps were taken, or `batches` runs out.

    loss_fn(model, batch) -> (mean loss over the batch's tokens, number of tokens): the loop is
    the same for a translator, a GPT or a ViT; only loss_fn knows what a batch is.
    eval_fn(model) -> {"valid_loss": ...}: called (model in eval mode, no grad) every `eval_every`
    seconds and once at the end. The bar counts seconds when a budget is given, else steps.
    Give `batches` as an endless iterator (e.g. `itertools.cycle` over epochs) for a pure time budget.
    cooldown: the last fraction of the budget (of `seconds`, or of `max_steps` if that ends first)
    over which every learning rate is scaled linearly down to 0, on top of `scheduler`.
    lr_by_progress(fraction) -> multiplier: every learning rate is also scaled by this function of the
    fraction of the budget done (training time, evaluation excluded, or steps / max_steps), from
    lr_by_progress(0.0) for the first step on: a warm-up and decay that follow the clock.
    """
    fn = "train_for"
    if seconds is None and max_steps is None:
        raise ValueError(f"{fn}: give a time budget `seconds` or `max_steps` (or both), got neither")
    if seconds is not None:
        check_number(fn, "seconds", seconds, low=0, low_open=True)
    if max_steps is not None:
        check_int(fn, "max_steps", max_steps)
    check_number(fn, "eval_every", eval_every, low=0, low_open=True)
    if not 0.0 <= cooldown < 1.0:
        raise ValueError(
            f"{fn}: cooldown is the fraction of the budget spent cooling the learning rate "
            f"down, in [0, 1); got {cooldown!r} (try 0.2)"
        )
    if lr_by_progress is not None and not callable(lr_by_progress):
        raise TypeError(
            f"{fn}: lr_by_progress must be a function of the fraction of the budget done, "
            f"got {type(lr_by_progress).__name__}"
        )
    from tqdm.auto import tqdm

    history = History()
    bar = tqdm(
        total=round(seconds) if seconds is not None else max_steps,
        desc=desc,
        disable=not progress,
        unit="s" if seconds is not None else "step",
        leave=True,
    )
    start = last_eval = time.perf_counter()
    shown = 0

    def evaluate(now: float) -> None:
        if eval_fn is None:
            return
        model.eval()
        with torch.no_grad():
            row = dict(eval_fn(model))
        model.train()
        history.eval.append({"step": history.steps, "time": now - start, **row})
        bar.set_postfix({k: f"{v:.3f}" for k, v in row.items() if isinstance(v, float)} | {"loss": f"{loss_value:.3f}"})

    loss_value = float("nan")
    planned = [g["lr"] for g in optimizer.param_groups]  # the rates before any cool-down scaling

    def done_fraction(now: float, steps: int) -> float:
        return max(
            (now - start) / seconds if seconds is not None else 0.0, steps / max_steps if max_steps is not None else 0.0
        )

    def lr_scale(fraction: float) -> float:
        scale = min(1.0, max(0.0, (1.0 - fraction) / cooldown)) if cooldown else 1.0
        return scale * lr_by_progress(fraction) if lr_by_progress is not None else scale

    rescaled = bool(cooldown) or lr_by_progress is not None
    if lr_by_progress is not None:  # the first step already follows the schedule
        for g, r in zip(optimizer.param_groups, planned):
            g["lr"] = r * lr_scale(0.0)

    model.train()
    for batch in batches:
        loss, n_tokens = loss_fn(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip_grad is not None:
            nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
        optimizer.step()
        lr = optimizer.param_groups[0]["lr"]
        now = time.perf_counter()
        if rescaled:  # undo last step's scaling so the scheduler sees its own rates
            for g, r in zip(optimizer.param_groups, planned):
                g["lr"] = r
        if scheduler is not None:
            scheduler.step()
        if rescaled:
            planned = [g["lr"] for g in optimizer.param_groups]
            scale = lr_scale(done_fraction(now, history.steps + 1))
            for g in optimizer.param_groups:
                g["lr"] *= scale
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            bar.close()
            raise FloatingPointError(
                f"{fn}: the loss became {loss_value} at step {history.steps + 1}; "
                "lower the learning rate or check the inputs"
            )
        history.steps += 1
        history.tokens += int(n_tokens)
        history.train.append(
            {"step": history.steps, "time": now - start, "loss": loss_value, "lr": lr, "tokens": int(n_tokens)}
        )
        if seconds is not None:
            bar.update(min(round(now - start), bar.total) - shown)
            shown = min(round(now - start), bar.total)
        else:
            bar.update(1)
        if history.steps % 10 == 0:
            bar.set_postfix(loss=f"{loss_value:.3f}", tok_s=f"{history.tokens / (now - start):.0f}")
        if now - last_eval >= eval_every:
            evaluate(now)
            last_eval = time.perf_counter()
            start += last_eval - now  # evaluation time does not count against the budget
        if (seconds is not None and now - start >= seconds) or (max_steps is not None and history.steps >= max_steps):
            break
    history.seconds = time.perf_counter() - start
    if rescaled:  # leave the optimizer as the schedule has it, ready to resume
        for g, r in zip(optimizer.param_groups, planned):
            g["lr"] = r
    evaluate(time.perf_counter())
    bar.close()
    return history


# ----------------------------------------------------------------------------- checkpoints
def _jsonable(config) -> dict:
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return dataclasses.asdict(config)
    if isinstance(config, Mapping):
        return dict(config)
    raise TypeError(f"save_checkpoint: config must be a dataclass instance or a dict, got {type(config).__name__}")


def save_checkpoint(path: str | Path, model: nn.Module, config=None, *, half: bool = False, **notes) -> Path:
    """Write {"state_dict", "config", "notes"} to `path` (parents created); returns the path.

    half=True stores floating-point tensors as float16: half the bytes, and for a trained
    model a change in the 4th significant digit that decoding does not notice. `notes` is
    anything JSON-able to keep beside the weights (the recipe, the BLEU, the history).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"save_checkpoint: model must be an nn.Module, got {type(model).__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        k: (v.detach().cpu().half() if half and v.is_floating_point() else v.detach().cpu())
        for k, v in model.state_dict().items()
    }
    payload = {
        "state_dict": state,
        "config": None if config is None else _jsonable(config),
        "notes": json.loads(json.dumps(notes, default=str)),
    }
    torch.save(payload, path)
    return path


def load_checkpoint(path: str | Path, model: nn.Module | None = None, map_location="cpu") -> dict:
    """Read a checkpoint written by `save_checkpoint`; float16 tensors come back as float32.

    With `model`, its weights are loaded in place (strictly: every name must match).
    Returns {"state_dict", "config", "notes"}.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"load_checkpoint: {path} does not exist; train a model first or fix the path")
    payload = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(payload, dict) or "state_dict" not in payload:
        raise ValueError(f"load_checkpoint: {path} is not a checkpoint written by save_checkpoint")
    payload["state_dict"] = {
        k: (v.float() if v.dtype == torch.float16 else v) for k, v in payload["state_dict"].items()
    }
    if model is not None:
        model.load_state_dict(payload["state_dict"])
    return payload
