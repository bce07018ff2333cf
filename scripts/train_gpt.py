"""Train notebook 05's GPT on Jane Austen for longer than the notebook can, and ship it as a small checkpoint.

    python scripts/train_gpt.py                                # the recorded recipe (GPU if present)
    python scripts/train_gpt.py --steps 50 --out build/gpt/try # any variation (`make train-gpt`)
    python scripts/train_gpt.py --eval-only --out models/gpt   # re-score the shipped checkpoint

Same code as the notebook: the GPT of course_utils.gpt, the byte-level BPE of notebook 03
(trained on the training text only), the split of course_utils.data.split_austen (the last
10 % of every novel held out), only a bigger model and more steps. Every figure is in bits
per *character* of the held-out text, whatever the tokens, so it compares with the
notebook's character n-gram models. The budget is a number of steps, not seconds: the same
seed gives the same model on any machine of the same kind.

It writes into --out:
  model.pt        fp16 weights + config + recipe + scores (`load_gpt`)
  tokenizer.json  the BPE (and tokenizer.vocab, readable)
  recipe.json     every argument, data sizes, tokens/s, the held-out scores and their history
Scores are measured on the saved fp16 weights, so they describe the file that ships.
"""

from __future__ import annotations

import course_utils  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads)
import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

from course_utils.bytelevel import ByteLevelBPE
from course_utils.data import split_austen
from course_utils.device import get_device, seed_everything
from course_utils.gpt import GPT, GPTConfig
from course_utils.language_models import bits_per_char, held_out_texts, load_gpt, windows
from course_utils.measure import count_parameters
from course_utils.paths import build_root
from course_utils.tools import results
from course_utils.train import save_checkpoint, train_for


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=build_root() / "gpt" / "reference")
    p.add_argument("--vocab-size", type=int, default=2048, help="BPE vocabulary (256 bytes + merges)")
    p.add_argument("--max-len", type=int, default=256, help="context length in tokens")
    p.add_argument("--n-layers", type=int, default=6)
    p.add_argument("--n-heads", type=int, default=5)
    p.add_argument("--d-model", type=int, default=320)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--batch", type=int, default=16, help="windows per step")
    p.add_argument("--steps", type=int, default=5200)
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (AdamW)")
    p.add_argument("--warmup", type=int, default=200, help="linear warm-up steps, then cosine to lr/10")
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--eval-every", type=int, default=400, help="steps between held-out scores (and saves)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    p.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the forward pass in bfloat16 autocast (weights and optimizer stay fp32): ~1.6x on a CPU with AMX;"
        " --no-bf16 for fp32 throughout",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--chars-per-novel", type=int, default=0, help="use only this many characters of each novel's parts (tests)"
    )
    p.add_argument("--eval-only", action="store_true", help="score the checkpoint in --out, train nothing")
    return p.parse_args(argv)


def score(model, tokenizer, texts: dict[str, str], device) -> dict[str, float]:
    return {
        name: round(bits_per_char(model, torch.tensor(tokenizer.encode(t)), len(t), device), 4)
        for name, t in texts.items()
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = get_device("auto")
    train, held = split_austen()
    if args.chars_per_novel:
        train, held = ({t: part[: args.chars_per_novel] for t, part in d.items()} for d in (train, held))
    texts = held_out_texts(held)
    if args.eval_only:
        model, tokenizer, notes = load_gpt(args.out, device)
        print(json.dumps({"recorded": notes.get("scores"), "now": score(model, tokenizer, texts, device)}, indent=1))
        return 0

    seed_everything(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    tokenizer = ByteLevelBPE().train("".join(train.values()), vocab_size=args.vocab_size)
    tokenizer.save(args.out / "tokenizer")
    train_ids = torch.tensor([i for text in train.values() for i in tokenizer.encode(text)])
    n_train_chars = sum(map(len, train.values()))
    print(
        f"BPE {tokenizer.vocab_size} tokens in {time.perf_counter() - t0:.0f} s; training text "
        f"{n_train_chars:,} chars = {len(train_ids):,} tokens ({n_train_chars / len(train_ids):.2f} chars/token)",
        flush=True,
    )
    config = GPTConfig(
        vocab_size=tokenizer.vocab_size,
        max_len=args.max_len,
        n_layers=args.n_layers,
        n_heads=args.n_heads,
        d_model=args.d_model,
        dropout=args.dropout,
        attn_impl="torch",
    )
    model = GPT(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.99), weight_decay=args.weight_decay)
    warm = args.warmup / args.steps

    def lr_by_progress(f: float) -> float:  # linear warm-up, then cosine from 1 down to 0.1
        if f < warm:
            return (f + 1 / args.steps) / warm
        return 0.1 + 0.45 * (1 + math.cos(math.pi * (f - warm) / (1 - warm)))

    recipe = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    recipe.update(parameters=count_parameters(model), train_chars=n_train_chars, train_tokens=len(train_ids))
    history: list[dict] = []

    def evaluate(step: int) -> None:  # score the 120k notebook characters and save: a run cut short still ships
        history.append({"step": step, **score(model, tokenizer, {"notebook": texts["notebook"]}, device)})
        print(f"step {step}: held-out {history[-1]['notebook']:.3f} bits/char", flush=True)
        save_checkpoint(args.out / "model.pt", model, config, half=True, recipe=recipe, history=history)

    recipe.update(_train_in_rounds(model, optimizer, train_ids, args, device, lr_by_progress, evaluate))
    save_checkpoint(args.out / "model.pt", model, config, half=True)
    shipped, tokenizer, _ = load_gpt(args.out, device)  # score the fp16 file that ships
    scores = score(shipped, tokenizer, texts, device)
    recipe.update(scores=scores, history=history)
    save_checkpoint(args.out / "model.pt", shipped, config, half=True, recipe=recipe, scores=scores, history=history)
    (args.out / "recipe.json").write_text(json.dumps(recipe, indent=1) + "\n")
    print(json.dumps(scores))
    if results.recording() and not args.chars_per_novel:
        record_run(recipe, device)
    return 0


def record_run(recipe: dict, device) -> None:
    """Write this run's figures to results/05.json (row `shipped-gpt`), from which the README quotes them."""
    curve = ", ".join(f"{h['step']}: {h['notebook']:.3f}" for h in recipe["history"])
    bf16 = ", bf16 autocast" if recipe["bf16"] else ""
    results.record(
        "05",
        "shipped-gpt",
        dict(
            bpc_notebook=recipe["scores"]["notebook"],
            bpc_all=recipe["scores"]["all"],
            parameters=recipe["parameters"],
            steps=recipe["steps"],
            train_minutes=round(recipe["train_seconds"] / 60, 1),
            tokens_per_s=recipe["tokens_per_s"],
        ),
        what=(
            f"the shipped GPT (`models/gpt`): {recipe['n_layers']} layers × {recipe['d_model']}, "
            f"{recipe['n_heads']} heads, dropout {recipe['dropout']}, BPE {recipe['vocab_size']} tokens, "
            f"{recipe['steps']} steps × {recipe['batch']} × {recipe['max_len']} tokens, AdamW {recipe['lr']:g}, "
            f"warm-up {recipe['warmup']}, cosine to a tenth"
        ),
        figure=(
            "held-out bits per character on the notebook's 120k characters **{bpc_notebook:.3f}** "
            "(all 403k held-out characters {bpc_all:.4f}); by step " + curve + "; {parameters:,} parameters, "
            "{train_minutes:.0f} min of training at {tokens_per_s:,} tokens/s"
        ),
        machine=("CPU" if str(device) == "cpu" else f"GPU ({device})") + bf16,
        command="`make train-gpt` (the script's defaults)",
    )


def _loss(model, batch, bf16: bool) -> torch.Tensor:
    """Mean next-token loss of one batch (inputs, targets); the forward in bfloat16 autocast if asked."""
    with torch.autocast(batch[0].device.type, dtype=torch.bfloat16, enabled=bf16):
        return model(*batch)[1]


def _train_in_rounds(model, optimizer, train_ids, args, device, lr_by_progress, evaluate) -> dict:
    """Train `args.steps` steps in rounds of `eval_every`, scoring and saving after each round."""
    batches = windows(train_ids, args.max_len, args.batch, args.seed, device)
    done, seconds, tokens = 0, 0.0, 0
    while done < args.steps:
        n = min(args.eval_every, args.steps - done)
        offset = done

        def scaled(f, offset=offset, n=n):  # progress of the whole run, not of this round
            return lr_by_progress((offset + f * n) / args.steps)

        h = train_for(
            model,
            optimizer,
            batches,
            lambda m, b: (_loss(m, b, args.bf16), b[0].numel()),
            max_steps=n,
            lr_by_progress=scaled,
            progress=False,
            desc="GPT on Austen",
        )
        done, seconds, tokens = done + n, seconds + h.seconds, tokens + h.tokens
        print(f"{done}/{args.steps} steps, {tokens / seconds:,.0f} tokens/s", flush=True)
        evaluate(done)
    return {"train_seconds": round(seconds), "tokens_per_s": round(tokens / seconds)}


if __name__ == "__main__":
    sys.exit(main())
