"""Step-matched ablation of notebook 04's translator recipe: change one thing, train, score.

    .venv/bin/python scripts/translator_ablation.py                      # every variant (~15 min each)
    .venv/bin/python scripts/translator_ablation.py --only base,dict_words --threads 1

Each variant trains notebook 04's recipe as it was before the curriculum (d 128, 2+2 layers,
pre-LN, 2k BPE, batches of 1,500 tokens, learning rate x0.5, dropout 0.1, 20 % cool-down) for
the same number of steps from the same seed, with one change, then prints its validation loss
and greedy validation BLEU (sacreBLEU 13a). Steps, not seconds, so that two variants can run
side by side (one thread each) and still be compared. `curriculum*` trains on the shorter half
of the pairs first (the notebook now does this); `dict_*` add word or phrase pairs from the Ding
dictionary (`apt-get install trans-de-en`). The README's results table has the figures this
printed on 2026-11-23/24.
"""

import course_utils  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads)
import argparse
import copy
import itertools
import re

import torch

from course_utils.data import load_translation_pairs
from course_utils.decoding import translate
from course_utils.paths import build_dir
from course_utils.tools.ding import DING, ding_parts, is_sentence, read_dictionary
from course_utils.train import train_for
from course_utils.translation import (
    bleu,
    encode_pairs,
    length_batches,
    make_translator,
    mean_loss,
    seq2seq_loss,
    shared_tokenizer,
    shorter_half,
)


# the recipe (course_utils.translation.make_translator's names) plus this script's knobs; a variant is its changes
BASE = dict(
    vocab=2000,
    d_model=128,
    n_encoder_layers=2,
    n_decoder_layers=2,
    n_heads=4,
    d_ff=512,
    dropout=0.1,
    norm_first=True,
    max_tokens=1500,
    lr_factor=0.5,
    warmup=100,
    cooldown=0.2,
    ema=None,
    seed=0,
    extra=None,
    curriculum=0.0,
)
VARIANTS = {
    "base": {},
    "seed1": dict(seed=1),
    "lr_x1.0": dict(lr_factor=1.0, cooldown=0.3),
    "lr_x0.3": dict(lr_factor=0.3),
    "dropout0": dict(dropout=0.0),
    "dropout0.2": dict(dropout=0.2),
    "3+1_layers": dict(n_encoder_layers=3, n_decoder_layers=1),
    "no_cooldown": dict(cooldown=0.0),
    "ema_no_cooldown": dict(cooldown=0.0, ema=0.998),
    "vocab1000": dict(vocab=1000),
    "curriculum": dict(curriculum=0.3),
    "curriculum_seed1": dict(curriculum=0.3, seed=1),
    "curriculum0.5": dict(curriculum=0.5),
    "dict_words": dict(extra="words"),
    "dict_phrases": dict(extra="phrases"),
}
_PLACEHOLDER = re.compile(r"\b(etw|jdm|jdn|jds|jd|sth|sb|sb's)\.|\b(sb|sth)\b")  # "etw. ausblenden", "to hide sth."


def _usable(x: str, max_words: int, words: bool) -> bool:
    """Not a sentence (those are in data/ already), no slash choice or placeholder, short enough;
    a word entry must not end in . ? ! either."""
    return (
        bool(x)
        and "/" not in x
        and not _PLACEHOLDER.search(x)
        and not is_sentence(x)
        and len(x.split()) <= max_words
        and not (words and x[-1:] in ".?!")
    )


def dictionary_pairs(kind: str, train: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Non-sentence pairs from the Ding dictionary.

    "words": the head entry of each line (first alternative each side, <= 4 words) whose words
    all occur in the training sentences, on both sides: vocabulary the model already needs.
    "phrases": any part of a line with >= 3 German words (<= 8), e.g. idioms and collocations.
    """
    pairs = []
    for part, ds, es in ding_parts(read_dictionary(DING)):  # the parser that made data/de_en_pairs.tsv
        if kind == "words":
            if part > 0:  # the head entry only, not its inflections or examples
                continue
            ds, es = [x for x in ds if _usable(x, 4, True)], [x for x in es if _usable(x, 4, True)]
            pairs += [(ds[0], es[0])] if ds and es else []
        else:
            candidates = list(zip(ds, es)) if len(ds) == len(es) else [(ds[0], es[0])]
            pairs += [
                (a, b) for a, b in candidates if _usable(a, 8, False) and _usable(b, 8, False) and len(a.split()) >= 3
            ]
    pairs = list(dict.fromkeys(pairs))
    if kind == "words":
        words = lambda s: re.findall(r"\w+", s.lower())  # noqa: E731
        de_seen, en_seen = {w for d, _ in train for w in words(d)}, {w for _, e in train for w in words(e)}
        pairs = [
            (d, e) for d, e in pairs if all(w in de_seen for w in words(d)) and all(w in en_seen for w in words(e))
        ]
    return pairs


def run(name: str, spec: dict, steps: int, n_valid: int | None) -> dict:
    """Train one variant for `steps` steps; return its validation loss and greedy validation BLEU."""
    train, valid = load_translation_pairs("train"), load_translation_pairs("valid")[:n_valid]
    extra = dictionary_pairs(spec["extra"], train) if spec["extra"] else []
    # the notebook's tokenizer: trained once at 4k (its largest comparison vocabulary), cut to size
    tok = shared_tokenizer(train, 4000, cache=str(build_dir("translator") / "bpe_full_4000")).truncated(spec["vocab"])
    train_ids, valid_ids = encode_pairs(tok, train + extra), encode_pairs(tok, valid)
    model, opt, sched = make_translator(spec, tok, seed=spec["seed"])
    config = model.config
    ema = copy.deepcopy(model) if spec["ema"] else None

    def loss_fn(m, batch):
        if ema is not None:  # average of the weights the previous steps produced
            with torch.no_grad():
                for pe, pm in zip(ema.parameters(), m.parameters()):
                    pe.lerp_(pm, 1 - spec["ema"])
        return seq2seq_loss(m, batch, 0.1)

    batches = length_batches(train_ids, config, spec["max_tokens"], 0)
    if spec["curriculum"]:  # the first fraction of the steps sees only the shorter half of the pairs
        batches = itertools.chain(
            itertools.islice(
                length_batches(shorter_half(train_ids), config, spec["max_tokens"], 0), int(spec["curriculum"] * steps)
            ),
            batches,
        )
    train_for(
        model,
        opt,
        batches,
        loss_fn,
        max_steps=steps,
        scheduler=sched,
        cooldown=spec["cooldown"],
        progress=True,
        desc=name,
    )
    scored = ema if ema is not None else model
    scored.eval()
    src, ref = [d for d, _ in valid], [e for _, e in valid]
    hyp = translate(scored, tok, src)
    valid_batches = list(length_batches(valid_ids, config, 2000, epochs=1))
    return dict(
        extra_pairs=len(extra),
        valid_loss=mean_loss(scored, valid_batches),
        bleu=bleu(hyp, ref),
        example=(src[0], hyp[0], ref[0]),
    )


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default=",".join(VARIANTS), help=f"comma-separated variants: {', '.join(VARIANTS)}")
    p.add_argument(
        "--steps", type=int, default=2835, help="training steps per variant (2,835: the notebook's full run)"
    )
    p.add_argument(
        "--valid", type=int, default=None, help="score on the first N validation sentences (default: all 905)"
    )
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: all cores)")
    args = p.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        p.error(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"{'variant':<16} {'extra pairs':>11} {'valid loss':>10} {'valid BLEU':>10}")
    for name in names:
        r = run(name, {**BASE, **VARIANTS[name]}, args.steps, args.valid)
        print(f"{name:<16} {r['extra_pairs']:>11,} {r['valid_loss']:>10.3f} {r['bleu']:>10.2f}", flush=True)
        print("    " + " | ".join(r["example"]))


if __name__ == "__main__":
    main()
