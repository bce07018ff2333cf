"""How sure is notebook 07's LoRA study? Full fine-tuning and LoRA at every rank, several seeds, each its own learning rate.

    python scripts/lora_seeds.py               # the recorded run (~45 min on 2 CPU cores)
    python scripts/lora_seeds.py --seeds 1 --ranks 4 --factors 1 --steps 20   # a quick look

Notebook 07 runs its study once (one seed). Here every method gets the same search: a starting
rate (07's first, hand-picked ones) times each of --factors (½, 1, 2 by default: full
fine-tuning 1e-4 / 2e-4 / 4e-4, LoRA 1e-3 / 2e-3 / 4e-3), scored on validation passages (from
the training stretches, never a training passage) with seed 0, and the best rate then runs
with --seeds seeds, each a new draw of passages, linear probe, adapters and batch order; the
notebook trains with the winners (tests/test_lora_study.py checks that).
(`course_utils.lora_study`, the notebook's own recipe: LP-FT, 200 steps of 16, LoRA+ with B at
8 times the rate, every rank scaled by alpha / sqrt(r) with alpha 4). Prints the validation
grid and a table of test accuracy, mean ± standard deviation over seeds; with
COURSE_RECORD_RESULTS=1 writes results/07.json row `lora-seed-study`.
"""

from __future__ import annotations

import course_utils  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads)
import argparse
import re
import statistics
import sys
import time

import torch
import torch.nn as nn

from course_utils.data import load_austen
from course_utils.device import get_device
from course_utils.finetune import minilm_folder
from course_utils.lora import apply_lora
from course_utils.lora_study import (
    Classifier,
    HFEncoder,
    accuracy,
    batched_features,
    finetune,
    fresh_classifier,
    linear_probe,
    which_novel,
)
from course_utils.tools import results

# notebook 07's recipe (its full-mode parameters)
LR = {"full": 2e-4, "lora": 2e-3}  # the starting rates (07's hand-picked ones): the centre of each method's search
LR_PROBE, PROBE_STEPS, B_RATIO, ALPHA = 1e-2, 300, 8, 4
TARGETS = ["query", "key", "value", "output.dense", "intermediate.dense"]  # every linear layer of every block


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=3, help="seeds per method (passages, probe, adapters, batches)")
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 4, 16], help="LoRA ranks")
    p.add_argument(
        "--factors", type=float, nargs="+", default=[0.5, 1.0, 2.0], help="rates tried: notebook rate x these"
    )
    p.add_argument("--steps", type=int, default=200, help="fine-tuning steps of --batch passages")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--train", type=int, default=200, help="training passages per novel")
    p.add_argument("--val", type=int, default=50, help="validation passages per novel (they choose the rate)")
    p.add_argument("--test", type=int, default=250, help="test passages per novel")
    p.add_argument("--words", type=int, default=28, help="words per passage")
    p.add_argument("--max-tokens", type=int, default=40, help="MiniLM tokens per passage (cut / padded)")
    args = p.parse_args(argv)
    for name in ("seeds", "steps", "batch", "train", "val", "test", "words", "max_tokens"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if min(args.ranks) < 1 or min(args.factors) <= 0:
        p.error(f"ranks must be >= 1 and factors > 0, got {args.ranks} and {args.factors}")
    return args


def key(method: str) -> str:
    """'LoRA r=4' -> 'lora_r_4': the method's name in results/07.json."""
    return re.sub(r"\W+", "_", method).strip("_").lower()


def main(argv=None) -> int:
    args = parse_args(argv)
    folder, why = minilm_folder()
    if folder is None:
        raise SystemExit(f"lora_seeds: {why}")
    import transformers

    transformers.logging.set_verbosity_error()
    device = get_device("auto")
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    encoder = HFEncoder(transformers.AutoModel.from_pretrained(folder, dtype=torch.float32)).to(device)
    encoder.requires_grad_(False).eval()
    books = load_austen()
    methods = {"full fine-tuning": None, **{f"LoRA r={r}": r for r in args.ranks}}

    def tensors(items):  # [(passage, label)] -> ids (N, T), mask (N, T), labels (N,)
        enc = tokenizer(
            [p for p, _ in items],
            padding="max_length",
            truncation=True,
            max_length=args.max_tokens,
            return_tensors="pt",
        )
        return enc["input_ids"], enc["attention_mask"].bool(), torch.tensor([y for _, y in items])

    def one_seed(seed: int, rates: dict[str, list[float]]) -> dict:
        """Accuracy on test (and on validation) of the probe and of every method at every rate given, for one seed."""
        data = which_novel(books, seed, args.words, args.train, args.test, n_val=args.val)
        (xt, mt, yt), (xv, mv, yv), (xs, ms, ys) = (tensors(data[s]) for s in ("train", "val", "test"))
        frozen = Classifier(encoder, nn.Linear(1, 1)).to(device)  # only its features are used
        probe = linear_probe(batched_features(frozen, xt, mt), yt, len(books), LR_PROBE, PROBE_STEPS, seed).to(device)
        out = {
            ("frozen + head", None): (
                accuracy(Classifier(encoder, probe), xv, mv, yv),
                accuracy(Classifier(encoder, probe), xs, ms, ys),
            )
        }
        for method, r in methods.items():
            for lr in rates[method]:
                model = fresh_classifier(encoder, probe, seed)
                if r is not None:
                    apply_lora(model.encoder, TARGETS, r=r, alpha=ALPHA, rslora=True)  # freezes the encoder's weights
                    model.head.requires_grad_(True)
                finetune(
                    model, xt, mt, yt, lr, args.steps, args.batch, B_RATIO, seed, desc=f"seed {seed} {method} lr {lr:g}"
                )
                out[method, lr] = (accuracy(model, xv, mv, yv), accuracy(model, xs, ms, ys))
                print(
                    f"seed {seed}, {method}, lr {lr:g}: validation {out[method, lr][0]:.1%}, test {out[method, lr][1]:.1%}",
                    flush=True,
                )
        return out

    t0 = time.perf_counter()
    grid = {m: [LR["full" if r is None else "lora"] * f for f in args.factors] for m, r in methods.items()}
    first = one_seed(0, grid)
    best = {m: max(grid[m], key=lambda lr: first[m, lr][0]) for m in methods}  # the rate with the best validation
    test = {m: [first[m, best[m]][1]] for m in methods}
    test["frozen + head"] = [first["frozen + head", None][1]]
    for seed in range(1, args.seeds):
        later = one_seed(seed, {m: [best[m]] for m in methods})
        for m in methods:
            test[m].append(later[m, best[m]][1])
        test["frozen + head"].append(later["frozen + head", None][1])
    minutes = (time.perf_counter() - t0) / 60

    print("\nvalidation accuracy by rate (seed 0):")
    for m in methods:
        print(
            f"  {m:>17}: " + ", ".join(f"{lr:g} {100 * first[m, lr][0]:.1f} %" for lr in grid[m]) + f"  -> {best[m]:g}"
        )
    print(f"\ntest accuracy, {args.seeds} seeds ({len(books) * args.test} passages each):")
    values = {}
    for m, accs in test.items():
        mean, sd = statistics.mean(accs), (statistics.stdev(accs) if len(accs) > 1 else 0.0)
        values.update({f"{key(m)}_mean": round(100 * mean, 2), f"{key(m)}_sd": round(100 * sd, 2)})
        values.update({f"{key(m)}_seed{i}": round(100 * a, 2) for i, a in enumerate(accs)})
        if m in best:
            values[f"{key(m)}_lr"] = best[m]
            values.update(
                {
                    f"{key(m)}_val_x{f:g}".replace(".", "_"): round(100 * first[m, lr][0], 2)
                    for f, lr in zip(args.factors, grid[m])
                }
            )
        print(f"  {m:>17}: {100 * mean:5.1f} ± {100 * sd:3.1f} %  (" + ", ".join(f"{100 * a:.1f}" for a in accs) + ")")
    print(f"{minutes:.1f} min on {device}")
    if results.recording():
        values["minutes"] = round(minutes, 1)
        record(values, args, methods)
    return 0


def record(values: dict, args, methods: dict) -> None:
    """results/07.json row `lora-seed-study`: every mean, spread, seed, chosen rate and validation score."""
    cells = "; ".join(f"{m} {{{key(m)}_mean:.1f}} ± {{{key(m)}_sd:.1f}} %" for m in ["frozen + head", *methods])
    results.record(
        "07",
        "lora-seed-study",
        values,
        what=(
            f"notebook 07's study with {args.seeds} seeds: which Austen novel ({6 * args.test} test passages per seed), "
            f"MiniLM, {args.steps} steps of {args.batch}, LoRA+ and alpha / sqrt(r) (alpha {ALPHA}); every method's rate "
            f"chosen on validation from {args.factors} x a starting rate ({LR['full']:g} full, {LR['lora']:g} LoRA); "
            "test accuracy %, mean ± sd over seeds"
        ),
        figure=cells + "; {minutes:.0f} min",
        machine="2-core CPU",
        command="`make lora-seeds`",
    )


if __name__ == "__main__":
    sys.exit(main())
