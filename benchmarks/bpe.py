"""Byte-level BPE: our pure-Python trainer and encoder against Hugging Face `tokenizers` (Rust), side by side.

    .venv/bin/python benchmarks/bpe.py            # 8,192 ids on all of Austen (~4 M characters)
    .venv/bin/python benchmarks/bpe.py --quick    # 2,048 ids on 500k characters, a few seconds

Both train on the same text with the same settings (GPT-2 pre-split, 256 byte symbols,
no minimum frequency) and encode the same paragraphs from a cold start. Printed: training
time, encoding throughput (MB/s of UTF-8), the ratios, and how many merges and token ids agree.
Targets from issue 7: train <= 30 s on 2 CPU cores, encode >= 1 MB/s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import course_utils  # noqa: E402,F401
from course_utils.paths import ROOT  # noqa: E402
from course_utils.bytelevel import ByteLevelBPE, bytes_to_unicode  # noqa: E402
from course_utils.data import load_austen  # noqa: E402
from course_utils.tools import results  # noqa: E402


def train_tokenizers(text: str, vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    hf = Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    hf.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=0,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    hf.train_from_iterator([text], trainer=trainer)  # one sequence: the same chunks as ours
    return hf


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2,048 ids on 500k characters")
    parser.add_argument("--vocab-size", type=int, default=None)
    parser.add_argument(
        "--machine", default=None, help="record the figures in results/03.json, e.g. '2-core CPU, idle'"
    )
    args = parser.parse_args()

    text = "".join(load_austen().values())
    if args.quick:
        text = text[:500_000]
    vocab_size = args.vocab_size or (2048 if args.quick else 8192)
    paragraphs = [p + "\n\n" for p in text.split("\n\n")]
    megabytes = len(text.encode("utf-8")) / 1e6
    print(
        f"text: {len(text):,} characters ({megabytes:.2f} MB), {len(paragraphs):,} paragraphs; "
        f"vocab_size {vocab_size:,}; cores visible: {os.cpu_count()}, "
        f"RAYON_NUM_THREADS={os.environ.get('RAYON_NUM_THREADS', 'unset')}"
    )

    ours, t_ours = timed(lambda: ByteLevelBPE().train(text, vocab_size))
    hf, t_hf = timed(train_tokenizers, text, vocab_size)

    def encode_ours():  # the same merges, a cold chunk cache
        fresh = ours.truncated(len(ours))
        return [i for p in paragraphs for i in fresh.encode(p)]

    ids_ours, e_ours = timed(encode_ours)
    batch, e_hf = timed(hf.encode_batch, paragraphs)
    ids_hf = [i for enc in batch for i in enc.ids]
    # the two number their byte symbols differently (byte value vs sorted stand-in character): compare the tokens
    b2u = bytes_to_unicode()
    same_tokens = ["".join(b2u[b] for b in ours.vocab[i]) for i in ids_ours] == [hf.id_to_token(i) for i in ids_hf]

    theirs = [
        tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in json.loads(hf.to_str())["model"]["merges"]
    ]
    mine = ours.merges_as_strings()
    n = min(1000, len(mine))
    print(f"{'':28}{'ours (Python)':>16}{'tokenizers (Rust)':>20}{'ours / theirs':>16}")
    print(f"{'training time (s)':28}{t_ours:16.2f}{t_hf:20.2f}{t_ours / t_hf:15.2f}x")
    print(f"{'encoding (MB/s)':28}{megabytes / e_ours:16.2f}{megabytes / e_hf:20.2f}{e_hf / e_ours:15.2f}x")
    print(f"{'tokens for the text':28}{len(ids_ours):16,}{len(ids_hf):20,}")
    print(
        f"same first {n} merges: {len(set(mine[:n]) & set(theirs[:n])) / n:.1%}; "
        f"all {len(mine)} merges in the same order: {mine == theirs}; identical tokens: {same_tokens}"
    )
    ok_train, ok_enc = t_ours <= 30, megabytes / e_ours >= 1.0
    print(
        f"targets: train <= 30 s: {'met' if ok_train else 'MISSED'}; encode >= 1 MB/s: {'met' if ok_enc else 'MISSED'}"
        + (" (quick run: the targets are for the full run)" if args.quick else "")
    )
    if args.machine and not args.quick and args.vocab_size in (None, 8192):
        path = results.record(
            "03",
            "bpe-speed",
            {
                "train_s_ours": t_ours,
                "train_s_theirs": t_hf,
                "encode_mbs_ours": megabytes / e_ours,
                "encode_mbs_theirs": megabytes / e_hf,
                "merges": len(mine),
                "tokens": len(ids_ours),
            },
            what=f"8,192-token byte-level BPE on all of Austen ({megabytes:.2f} MB): train / encode",
            figure="ours {train_s_ours:.2f} s / {encode_mbs_ours:.2f} MB/s; `tokenizers` {train_s_theirs:.2f} s / "
            "{encode_mbs_theirs:.2f} MB/s"
            + ("; all {merges:,} merges and {tokens:,} tokens identical" if mine == theirs and same_tokens else ""),
            machine=args.machine,
            command="`.venv/bin/python benchmarks/bpe.py --machine '...'`",
        )
        print(f"recorded in {path.relative_to(ROOT)}; `make results` writes it into the README")


if __name__ == "__main__":
    main()
