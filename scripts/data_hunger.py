"""Does the ViT need more data than the CNN? Both trained to convergence on growing subsets of Fashion-MNIST.

    python scripts/data_hunger.py                       # the recorded run (~40 min on 2 CPU cores)
    python scripts/data_hunger.py --sizes 1000 --min-steps 100 --epochs 1   # a quick look

Notebook 06's race gives both models the same minutes on all 60,000 images. Here each
training-set size gets its own run to convergence: `--epochs` passes over the subset but at
least `--min-steps` steps of 128 (a small subset is seen hundreds of times over), the recipe of
the notebook (`course_utils.vit_vs_cnn`: AdamW, warm-up + cosine in steps, label smoothing), the
validation accuracy checked `--evals` times, and the best state kept (early stopping). The
subsets are nested (the first n of the first 55,000 training images); validation is the last
5,000, test the 10,000 test images. Prints the table; with COURSE_RECORD_RESULTS=1 writes
results/06.json row `data-hunger-converged`.
"""

from __future__ import annotations

import course_utils  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads)
import argparse
import sys
import time

import torch

from course_utils.data import load_fashion_mnist
from course_utils.tools import results
from course_utils.vit_vs_cnn import SmallCNN, accuracy, small_vit, train_with_early_stopping

N_VAL = 5000  # the last 5,000 training images: validation for early stopping


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 3000, 10000, 30000, 55000], help="training images")
    p.add_argument("--epochs", type=int, default=20, help="passes over each subset (at least --min-steps steps)")
    p.add_argument("--min-steps", type=int, default=2000, help="steps of 128 for every subset at least")
    p.add_argument("--evals", type=int, default=12, help="validation checks per run (early stopping)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--val-images", type=int, default=N_VAL, help="the last training images, kept for validation")
    p.add_argument("--test-images", type=int, default=10000, help="test images scored (the first ones)")
    args = p.parse_args(argv)
    if not args.sizes or min(args.sizes) < 128 or max(args.sizes) > 60000 - args.val_images:
        p.error(
            f"--sizes must lie in 128 .. {60000 - args.val_images:,} (a batch at least; validation keeps "
            f"{args.val_images:,}), got {args.sizes}"
        )
    for name in ("epochs", "min_steps", "evals", "val_images", "test_images"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    train_images, train_labels = load_fashion_mnist("train")
    test_images, test_labels = load_fashion_mnist("test")
    mean, std = float(train_images.mean() / 255), float(train_images.std() / 255)

    def to_tensor(images):  # (N, 28, 28) uint8 -> (N, 1, 28, 28), standardised like notebook 06
        return (torch.tensor(images).float().div(255) - mean).div(std)[:, None]

    n_fit = 60000 - args.val_images  # subsets come from the first n_fit images, validation from the rest
    X, y = to_tensor(train_images[: max(args.sizes)]), torch.tensor(train_labels[: max(args.sizes)])
    X_val, y_val = to_tensor(train_images[n_fit:]), torch.tensor(train_labels[n_fit:])
    X_test, y_test = to_tensor(test_images[: args.test_images]), torch.tensor(test_labels[: args.test_images])
    t0, values = time.perf_counter(), {}
    print(f"{'images':>7} {'model':>5} {'steps':>6} {'epochs':>7} {'best at':>8} {'val':>6} {'test':>6}", flush=True)
    for n in sorted(args.sizes):
        for name, make in (("vit", small_vit), ("cnn", SmallCNN)):
            start = time.perf_counter()
            run = train_with_early_stopping(
                make, X[:n], y[:n], X_val, y_val, args.epochs, args.min_steps, args.evals, args.seed, f"{name} on {n:,}"
            )
            test = accuracy(run["model"], X_test, y_test)
            values.update(
                {
                    f"{name}_{n}": round(100 * test, 2),
                    f"{name}_{n}_val": round(100 * run["val_acc"], 2),
                    f"{name}_{n}_best_step": run["best_step"],
                    f"{name}_{n}_steps": run["steps"],
                    f"{name}_{n}_s": round(time.perf_counter() - start, 1),
                }
            )
            print(
                f"{n:>7,} {name:>5} {run['steps']:>6} {run['epochs']:>7.1f} {run['best_step']:>8} "
                f"{100 * run['val_acc']:>5.1f}% {100 * test:>5.1f}%",
                flush=True,
            )
        values[f"gap_{n}"] = round(values[f"cnn_{n}"] - values[f"vit_{n}"], 2)
    minutes = (time.perf_counter() - t0) / 60
    print("\nCNN - ViT on the test set: " + ", ".join(f"{n:,}: {values[f'gap_{n}']:+.1f}" for n in sorted(args.sizes)))
    print(f"{minutes:.1f} min, {torch.get_num_threads()} threads")
    if results.recording():
        values["minutes"] = round(minutes, 1)
        sizes = sorted(args.sizes)
        results.record(
            "06",
            "data-hunger-converged",
            values,
            what=(
                f"data hunger: ViT and CNN trained to convergence on the first n of 55,000 Fashion-MNIST images "
                f"({args.epochs} epochs, at least {args.min_steps} steps of 128, best of {args.evals} validation checks "
                f"on 5,000 held-out training images), test accuracy % on 10,000"
            ),
            figure="; ".join(f"{n:,}: ViT {{vit_{n}:.1f}}, CNN {{cnn_{n}:.1f}} (gap {{gap_{n}:+.1f}})" for n in sizes)
            + "; {minutes:.0f} min",
            machine=f"2-core CPU, {torch.get_num_threads()} thread(s)",
            command="`make data-hunger`",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
