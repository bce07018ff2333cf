"""Notebook 05's language models on Austen: one held-out text, one unit of score, the shipped GPT.

Every model of notebook 05 (the n-grams, the GPT trained in the notebook, the longer-trained
GPT of `scripts/train_gpt.py`, a pretrained LLM) is scored on the same held-out characters
(`held_out_texts` of `course_utils.data.split_austen`) in bits per *character*, whatever its
tokens, so their figures compare:

- `held_out_texts`: the 120k characters the notebook scores, and all of them;
- `windows`: endless random training windows of a token stream;
- `bits_per_char`: a GPT's held-out cross-entropy in bits per character, each token scored
  once with at least half a window of context;
- `load_gpt`: the model and tokenizer of a folder `scripts/train_gpt.py` wrote.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

from course_utils.bytelevel import ByteLevelBPE
from course_utils.gpt import GPT, GPTConfig
from course_utils.train import load_checkpoint

NOTEBOOK_EVAL_CHARS = 120_000  # notebook 05 scores the first 20k held-out characters of each novel


def held_out_texts(held: dict[str, str]) -> dict[str, str]:
    """{"notebook": the 120k characters notebook 05 scores, "all": every held-out character}."""
    per_book = NOTEBOOK_EVAL_CHARS // len(held)
    return {"notebook": "".join(t[:per_book] for t in held.values()), "all": "".join(held.values())}


@torch.no_grad()
def bits_per_char(model: GPT, ids: torch.Tensor, n_chars: int, device, batch: int = 32) -> float:
    """Held-out bits per character: total cross-entropy of `ids` in bits / characters they spell.

    Windows of max_len tokens overlap by half, the last one flush with the end; each token
    is scored once, by the first window that has not scored it, so every token but the first
    max_len/2 has at least max_len/2 tokens of context, as a reader who kept reading would.
    """
    n, T = len(ids), model.config.max_len
    L = min(T, n - 1)  # window length: T, or the whole text when it is shorter
    starts = list(range(0, n - 1 - L + 1, T // 2))
    if starts[-1] + L < n - 1:
        starts.append(n - 1 - L)
    firsts, done = [], 0  # firsts[w]: the first position window w scores; done: targets scored so far
    for start in starts:
        firsts.append(done - start)
        done = start + L
    model.eval()
    total = 0.0
    for i in range(0, len(starts), batch):
        rows = torch.stack([ids[start : start + L + 1] for start in starts[i : i + batch]]).to(device)  # (B, L+1)
        nll = F.cross_entropy(model(rows[:, :-1])[0].transpose(1, 2), rows[:, 1:], reduction="none")  # (B, L)
        total += sum(float(nll[j, first:].sum()) for j, first in enumerate(firsts[i : i + batch]))
    return total / math.log(2) / n_chars


def windows(ids: torch.Tensor, block: int, batch: int, seed: int, device):
    """Endless random training windows: x = ids[i : i + block], y = ids[i + 1 : i + block + 1]."""
    g = torch.Generator().manual_seed(seed)
    while True:
        start = torch.randint(len(ids) - block - 1, (batch,), generator=g)
        rows = torch.stack([ids[s : s + block + 1] for s in start.tolist()])
        yield rows[:, :-1].to(device), rows[:, 1:].to(device)


def load_gpt(folder: Path, device="cpu") -> tuple[GPT, ByteLevelBPE, dict]:
    """(model in eval mode, tokenizer, notes) from a folder this script wrote."""
    payload = load_checkpoint(Path(folder) / "model.pt")
    model = GPT(GPTConfig(**payload["config"]))
    model.load_state_dict(payload["state_dict"])
    return model.to(device).eval(), ByteLevelBPE.load(Path(folder) / "tokenizer.json"), payload["notes"]
