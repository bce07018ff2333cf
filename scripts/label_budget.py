"""Does pre-training pay? MiniLM fine-tuned from its pre-trained weights and from random ones, at 10 / 50 / 400
labelled passages per novel, several seeds: the label-budget curve of notebook 05, section 7.

    python scripts/label_budget.py                 # the recorded run (~30 min on 2 CPU cores)
    python scripts/label_budget.py --seeds 1 --budgets 10 --lrs 1e-4   # a quick look

The task is notebook 05's "which novel is this passage from?": passages of `PASSAGE_CHARS`
characters from the training text (the first 90 % of every novel), tested on
`TEST_PER_NOVEL` passages per novel from the held-out ends (`course_utils.finetune`, shared with
the notebook, which runs the same curve for our own small BERT). Both starts get the same
architecture (all-MiniLM-L6-v2: 6 layers, 384 wide, 22.7M parameters; passages cut at --max-tokens), the same passages, the
same batches and steps, and each its own learning rate, chosen from --lrs on validation
passages (disjoint from every training passage) at the smallest budget with seed 0, so neither
start is handicapped by a rate that suits the other. Prints a table; with
COURSE_RECORD_RESULTS=1 writes results/05.json row `label-budget`.
"""

from __future__ import annotations

import course_utils  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads)
import argparse
import statistics
import sys
import time

import torch

from course_utils.data import split_austen
from course_utils.device import get_device
from course_utils.finetune import (
    LABEL_BUDGETS,
    PASSAGE_CHARS,
    TEST_PER_NOVEL,
    accuracy,
    fine_tune_minilm,
    load_minilm,
    minilm_folder,
    minilm_rows,
    novel_passages,
)
from course_utils.tools import results

STARTS = ("pre-trained", "random")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--budgets", type=int, nargs="+", default=list(LABEL_BUDGETS), help="labelled passages per novel")
    p.add_argument("--seeds", type=int, default=3, help="seeds per budget (passages, batches, head)")
    p.add_argument("--lrs", type=float, nargs="+", default=[3e-5, 1e-4, 3e-4], help="learning rates tried")
    p.add_argument("--val-per-novel", type=int, default=30, help="validation passages per novel (for the lr)")
    p.add_argument("--max-tokens", type=int, default=128, help="MiniLM tokens per passage (longer ones are cut)")
    p.add_argument("--no-bf16", dest="bf16", action="store_false", help="run the forward in fp32")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if minilm_folder()[0] is None:
        raise SystemExit(f"label_budget: {minilm_folder()[1]}")
    import transformers

    transformers.logging.set_verbosity_error()
    device = get_device("auto")
    tok = load_minilm()[1]
    train_parts, held_parts = split_austen()
    n_classes = len(train_parts)

    def encode(texts):
        return minilm_rows(tok, texts, args.max_tokens)

    test_texts, test_y = novel_passages(held_parts, TEST_PER_NOVEL, PASSAGE_CHARS, seed=10_000)
    val_texts, val_y = novel_passages(train_parts, args.val_per_novel, PASSAGE_CHARS, seed=0, start=max(args.budgets))
    x_test, y_test, x_val, y_val = encode(test_texts), torch.tensor(test_y), encode(val_texts), torch.tensor(val_y)

    def run(start: str, per_novel: int, seed: int, lr: float, x_eval, y_eval) -> float:
        texts, labels = novel_passages(train_parts, per_novel, PASSAGE_CHARS, seed=seed)  # nested in the bigger budgets
        steps = LABEL_BUDGETS[per_novel]
        model, _ = fine_tune_minilm(
            start == "pre-trained", texts, labels, steps, lr, seed, device, args.max_tokens, args.bf16
        )
        return accuracy(model, x_eval, y_eval, device)[0]

    t0 = time.perf_counter()
    low = min(args.budgets)  # the rate is chosen where the comparison's target is: the fewest labels
    best_lr = {}
    for start in STARTS:  # each start its own learning rate, on validation passages
        val = {lr: round(run(start, low, 0, lr, x_val, y_val), 4) for lr in args.lrs}
        best_lr[start] = max(val, key=val.get)
        print(f"{start}: validation accuracy by lr at {low}/novel: {val} -> {best_lr[start]:g}", flush=True)

    acc = {(s, b): [] for s in STARTS for b in args.budgets}
    for b in args.budgets:
        for seed in range(args.seeds):
            for s in STARTS:
                acc[s, b].append(run(s, b, seed, best_lr[s], x_test, y_test))
            print(f"{b}/novel seed {seed}: " + ", ".join(f"{s} {acc[s, b][-1]:.1%}" for s in STARTS), flush=True)
    minutes = (time.perf_counter() - t0) / 60

    print(f"\nheld-out accuracy on {len(y_test)} passages (chance {1 / n_classes:.1%}), {args.seeds} seeds:")
    print(f"{'per novel':>9} " + " ".join(f"{s:>20}" for s in STARTS) + f" {'gain':>7}")
    values = {f"lr_{s.replace('-', '_')}": best_lr[s] for s in STARTS}
    for b in args.budgets:
        row = []
        for s in STARTS:
            a = acc[s, b]
            m, sd = statistics.mean(a), (statistics.stdev(a) if len(a) > 1 else 0.0)
            row.append(f"{100 * m:6.1f} ± {100 * sd:4.1f} %")
            key = "pre" if s == "pre-trained" else "random"
            values.update({f"{key}_{b}_mean": round(100 * m, 2), f"{key}_{b}_sd": round(100 * sd, 2)})
            values.update({f"{key}_{b}_seed{i}": round(100 * v, 2) for i, v in enumerate(a)})
        gain = 100 * (statistics.mean(acc["pre-trained", b]) - statistics.mean(acc["random", b]))
        values[f"gain_{b}"] = round(gain, 2)
        print(f"{b:>9} " + " ".join(f"{r:>20}" for r in row) + f" {gain:+6.1f}")
    print(f"{minutes:.1f} min on {device}")
    if results.recording():
        values["minutes"] = round(minutes, 1)
        record(values, args)
    return 0


def record(values: dict, args) -> None:
    """results/05.json row `label-budget`: every mean, spread and seed, the chosen rates and the run time."""
    budgets = sorted(args.budgets)
    cells = "; ".join(
        f"{b}/novel: pre-trained {{pre_{b}_mean:.1f}} ± {{pre_{b}_sd:.1f}} %, random {{random_{b}_mean:.1f}} ± "
        f"{{random_{b}_sd:.1f}} % (gain **{{gain_{b}:+.1f}}** points)"
        for b in budgets
    )
    results.record(
        "05",
        "label-budget",
        values,
        what=(
            f'pre-training pays: MiniLM (all-MiniLM-L6-v2) fine-tuned on "which novel" from its pre-trained weights '
            f"and from random ones, {args.seeds} seeds per budget, {TEST_PER_NOVEL * 6} held-out passages of "
            f"{PASSAGE_CHARS} characters, learning rate per start chosen on validation from {args.lrs}"
        ),
        figure=cells + "; rates {lr_pre_trained:g} / {lr_random:g}; {minutes:.0f} min",
        machine="2-core CPU" + (", bf16 autocast" if args.bf16 else ""),
        command="`make label-budget`",
    )


if __name__ == "__main__":
    sys.exit(main())
