"""Which corpus can notebook 04's translator learn? The same recipe and budget on each candidate, scored.

    .venv/bin/python scripts/translation_corpora.py              # every candidate, two at a time (~40 min)
    .venv/bin/python scripts/translation_corpora.py --only bible,libreoffice
    .venv/bin/python scripts/translation_corpora.py --collect    # re-read the runs already in build/

Each candidate corpus (`course_utils.data.TRANSLATION_CORPORA`, and unions of one language)
trains the reference recipe of `scripts/train_translator.py` (d 192, 3+3 layers, 3k shared BPE)
for the same `--seconds` on one CPU thread, two candidates side by side, then decodes the first
`--limit-eval` sentences of its own validation and test splits (beam 4). The budget is equal;
the test sets are not (each corpus has its own), so read a row as "how far this recipe gets on
this kind of text in this time". With COURSE_RECORD_RESULTS=1 the table goes into
results/04.json (row `corpus-pilots`), and from there into the README.
"""

import course_utils  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads)
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from course_utils.data import load_translation_pairs  # noqa: E402
from course_utils.paths import ROOT, build_dir  # noqa: E402
from course_utils.tools import results  # noqa: E402

CANDIDATES = ["ding", "libreoffice", "wesnoth", "ding+libreoffice", "bible"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default=",".join(CANDIDATES), help=f"comma-separated candidates (default: {CANDIDATES})")
    p.add_argument("--seconds", type=float, default=420.0, help="training budget of each candidate")
    p.add_argument("--limit-eval", type=int, default=300, help="validation and test sentences decoded")
    p.add_argument("--parallel", type=int, default=2, help="candidates trained at once, one thread each")
    p.add_argument("--out", type=Path, default=build_dir("translator") / "corpora", help="one folder per candidate")
    p.add_argument("--collect", action="store_true", help="do not train: read the recipe.json of earlier runs")
    args = p.parse_args(argv)
    args.only = args.only.split(",")
    for corpus in args.only:
        load_translation_pairs("valid", corpus)  # a bad name fails now, with the loader's message
    return args


def run_all(args) -> None:
    """Train and score every candidate, `args.parallel` at a time, each in its own process and thread."""
    waiting = list(args.only)
    running: list[tuple[str, subprocess.Popen]] = []
    while waiting or running:
        while waiting and len(running) < args.parallel:
            corpus = waiting.pop(0)
            out = args.out / corpus
            out.mkdir(parents=True, exist_ok=True)
            cmd = [sys.executable, str(ROOT / "scripts" / "train_translator.py"), "--corpus", corpus]
            cmd += ["--out", str(out), "--seconds", str(args.seconds), "--short-seconds", "0", "--threads", "1"]
            cmd += ["--limit-eval", str(args.limit_eval)]
            log = open(out / "train.log", "w")  # noqa: SIM115  (closed with the process below)
            print(f"{corpus}: training {args.seconds:.0f} s, log in {out / 'train.log'}")
            running.append((corpus, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=os.environ)))
        corpus, proc = running.pop(0)
        if proc.wait() != 0:
            raise SystemExit(f"{corpus}: train_translator.py failed, see {args.out / corpus / 'train.log'}")


def collect(args) -> dict[str, dict]:
    """{candidate: results of its recipe.json} for every candidate that has one."""
    found = {}
    for corpus in args.only:
        path = args.out / corpus / "recipe.json"
        if not path.exists():
            raise SystemExit(f"{path} is missing: run without --collect to train {corpus}")
        found[corpus] = json.loads(path.read_text())["results"]
    return found


def main(argv=None) -> int:
    args = parse_args(argv)
    if not args.collect:
        run_all(args)
    found = collect(args)
    print(f"{'corpus':>18} {'train pairs':>11} {'epochs':>6} {'valid loss':>10} {'test BLEU':>9} {'chrF':>6}")
    values = {}
    for corpus, r in found.items():
        n = len(load_translation_pairs("train", corpus))
        print(
            f"{corpus:>18} {n:>11,} {r['epochs']:>6.2f} {r['valid_loss']:>10.3f} {r['test_bleu']:>9.2f} {r['test_chrf']:>6.2f}"
        )
        key = corpus.replace("+", "_")
        values.update({f"{key}_bleu": r["test_bleu"], f"{key}_chrf": r["test_chrf"], f"{key}_epochs": r["epochs"]})
    if results.recording():
        cells = "; ".join(
            f"{c}: BLEU **{{{c.replace('+', '_')}_bleu:.2f}}**, chrF {{{c.replace('+', '_')}_chrf:.1f}} "
            f"({{{c.replace('+', '_')}_epochs:.1f}} epochs)"
            for c in found
        )
        results.record(
            "04",
            "corpus-pilots",
            values,
            what=(
                f"which corpus the translator learns: the reference recipe (d 192, 3+3, 3k BPE) for {args.seconds:.0f} s "
                f"on one thread per candidate, two side by side; test BLEU / chrF on the first {args.limit_eval} "
                "sentences of each candidate's own test split (ding+libreoffice: those are Ding sentences)"
            ),
            figure=cells,
            machine="2-core CPU, one thread each",
            command="`.venv/bin/python scripts/translation_corpora.py`",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
