"""Long sequences on a CPU: block-sparse vs masked full attention, tiled vs naive memory, the KV cache.

    .venv/bin/python benchmarks/long_attention.py            # n up to 8,192 (time) and 16,384 (memory)
    .venv/bin/python benchmarks/long_attention.py --quick    # n up to 2,048 / 4,096, ~1 minute

Three tables (issue 12's targets, reported here, never asserted in tests):
1. time of BigBird block-sparse attention (`course_utils.sparse.block_sparse_attention`,
   block 64, 3 window blocks, 2 global, 3 random: the BigBird-base pattern) vs the same
   pattern as a mask on full attention (`course_utils.attention.scaled_dot_product_attention`),
   and the crossover length above which block-sparse wins (target: <= 4,096 on CPU);
2. peak extra resident memory of naive attention (forms the n x n weights) vs tiled attention
   with the online softmax (`course_utils.flash.tiled_attention`, 128 x 128 tiles) as n grows
   to 16k (target: tiled grows as O(n)). Measured with `course_utils.measure.peak_rss`:
   Linux's resident-set high-water mark (VmHWM), reset through /proc/self/clear_refs before each
   call, with glibc returning big blocks to the OS (tracemalloc cannot see torch's CPU tensors);
3. greedy generation with and without a KV cache, speed-up vs generated length
   (target: >= 3x at 512 tokens).
Times are the best of `--repeats` runs (the least disturbed by other processes).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import course_utils  # noqa: E402,F401  (before torch)
import torch  # noqa: E402

from course_utils.attention import scaled_dot_product_attention  # noqa: E402
from course_utils.flash import tiled_attention  # noqa: E402
from course_utils.measure import best_time, peak_rss  # noqa: E402
from course_utils.tools import results  # noqa: E402
from course_utils.sparse import bigbird_layout, block_sparse_attention, expand_layout  # noqa: E402

BIGBIRD = dict(block=64, window=1, n_global=2, n_random=3)  # BigBird-base's block pattern


def sparse_vs_masked(ns, heads: int = 2, d: int = 64, repeats: int = 3, seed: int = 0):
    """Rows (n, masked-full seconds, block-sparse seconds, fraction of pairs attended)."""
    rows = []
    g = torch.Generator().manual_seed(seed)
    b = BIGBIRD["block"]
    for n in ns:
        layout = bigbird_layout(n // b, BIGBIRD["window"], BIGBIRD["n_global"], BIGBIRD["n_random"], g)
        mask = expand_layout(layout, b)
        q, k, v = (torch.randn(1, heads, n, d, generator=g) for _ in range(3))
        with torch.no_grad():
            t_full = best_time(lambda: scaled_dot_product_attention(q, k, v, mask), repeats=repeats)
            t_sparse = best_time(lambda: block_sparse_attention(q, k, v, layout, b), repeats=repeats)
        rows.append((n, t_full, t_sparse, float(mask.float().mean())))
    return rows


def crossover(rows) -> int | None:
    """The smallest n from which block-sparse is faster at every longer n measured (None if never)."""
    best = None
    for n, t_full, t_sparse, _ in reversed(rows):
        if t_sparse < t_full:
            best = n
        else:
            break
    return best


def memory_naive_vs_tiled(ns, d: int = 64, block: int = 128, seed: int = 0):
    """Rows (n, naive peak bytes, tiled peak bytes); naive keeps its (n, n) weights like any
    attention that returns them, tiled never forms them."""
    rows = []
    g = torch.Generator().manual_seed(seed)
    for n in ns:
        q, k, v = (torch.randn(1, n, d, generator=g) for _ in range(3))
        with torch.no_grad():
            naive = peak_rss(lambda: scaled_dot_product_attention(q, k, v))
            tiled = peak_rss(lambda: tiled_attention(q, k, v, block, block))
        rows.append((n, naive, tiled))
        q = k = v = None  # free the (n, d) inputs before the next, larger n
    return rows


def kv_cache_speedup(lengths, repeats: int = 1, seed: int = 0):
    """Rows (new tokens, seconds without cache, seconds with cache, tokens identical?) for greedy
    generation with notebook 05's GPT (`course_utils.gpt`, RoPE, untrained: speed does not depend
    on the weights)."""
    from course_utils.gpt import GPT, GPTConfig

    torch.manual_seed(seed)
    prompt = torch.randint(96, (1, 16), generator=torch.Generator().manual_seed(seed))
    model = GPT(
        GPTConfig(vocab_size=96, max_len=prompt.shape[1] + max(lengths), n_layers=4, n_heads=4, d_model=128, rope=True)
    ).eval()
    rows = []
    for n_new in lengths:
        out, times = {}, {}
        for cached in (False, True):
            times[cached] = best_time(
                lambda: out.__setitem__(cached, model.generate(prompt, n_new, temperature=0, use_cache=cached)),
                repeats=repeats,
            )
        rows.append((n_new, times[False], times[True], bool(torch.equal(out[False], out[True]))))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, about a minute")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip", nargs="*", default=[], choices=["sparse", "memory", "kv"])
    args = parser.parse_args()
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores visible, "
        f"load average {load:.1f} (higher than the core count = the timings are inflated by other processes)"
    )

    if "sparse" not in args.skip:
        ns = [256, 512, 1024, 2048] if args.quick else [256, 512, 1024, 2048, 4096, 8192]
        print(f"\n1. block-sparse vs masked full attention, batch 1, 2 heads, d 64, BigBird pattern {BIGBIRD}")
        print(f"{'n':>6} {'masked full (ms)':>17} {'block-sparse (ms)':>18} {'speed-up':>9} {'pairs kept':>11}")
        rows = sparse_vs_masked(ns, repeats=args.repeats)
        for n, tf, ts, frac in rows:
            print(f"{n:>6} {tf * 1e3:>17.1f} {ts * 1e3:>18.1f} {tf / ts:>8.2f}x {frac:>10.1%}")
        c = crossover(rows)
        print(f"crossover: block-sparse is faster from n = {c} on" if c else "crossover: not reached")
        if results.recording() and not args.quick:  # COURSE_RECORD_RESULTS=1: into results/08.json
            results.record(
                "08",
                "block-sparse-vs-masked",
                {**{f"speedup_{n}": round(tf / ts, 2) for n, tf, ts, _ in rows}, "crossover": c or 0},
                what=f"block-sparse vs masked full attention (batch 1, 2 heads, d 64, BigBird {BIGBIRD}), "
                f"best of {args.repeats}; load average {load:.1f}",
                figure="faster from n = {crossover} (0: never); "
                + ", ".join(f"{{speedup_{n}:.1f}}× at {n:,}" for n, *_ in rows if n >= 2048),
                machine=f"2-core CPU, {torch.get_num_threads()} threads",
                command="`COURSE_RECORD_RESULTS=1 .venv/bin/python benchmarks/long_attention.py --skip memory kv`",
            )

    if "memory" not in args.skip:
        ns = [1024, 2048, 4096] if args.quick else [1024, 2048, 4096, 8192, 16384]
        print(
            "\n2. peak extra resident memory, batch 1, one head, d 64, tiles 128 x 128 "
            "(VmHWM via /proc/self/clear_refs)"
        )
        print(f"{'n':>6} {'naive (MiB)':>12} {'tiled (MiB)':>12} {'output alone (MiB)':>19}")
        for n, naive, tiled in memory_naive_vs_tiled(ns):
            if naive is None:
                print("peak memory is not measurable on this system (needs Linux /proc)")
                break
            print(f"{n:>6} {naive / 2**20:>12.1f} {tiled / 2**20:>12.2f} {n * 64 * 4 / 2**20:>19.2f}")

    if "kv" not in args.skip:
        lengths = [64, 128] if args.quick else [64, 128, 256, 512]
        print(
            "\n3. greedy generation, course_utils.gpt.GPT (4 layers, 4 heads, d 128, RoPE), prompt 16 tokens, "
            "best of 1 after a warm-up"
        )
        print(f"{'new tokens':>10} {'no cache (s)':>13} {'KV cache (s)':>13} {'speed-up':>9} {'same tokens':>12}")
        for n_new, t0, t1, same in kv_cache_speedup(lengths, repeats=1):
            print(f"{n_new:>10} {t0:>13.2f} {t1:>13.2f} {t0 / t1:>8.1f}x {str(same):>12}")


if __name__ == "__main__":
    main()
