"""The translator of notebook 04: its data, its training recipe, its checkpoints and its score, in one home.

Notebook 04, `scripts/train_translator.py` (the shipped reference model) and
`scripts/translator_ablation.py` all train and score the same way, with these pieces:

- data: `shared_tokenizer` (one byte-level BPE for German and English, notebook 03) and
  `config_ids`; `encode_pairs`; batches of similar length (`batch_by_length`, `pad_batch`,
  `make_batch`, `length_batches`) and the short-pairs-first curriculum (`shorter_half`,
  `curriculum_batches`);
- the loss: `seq2seq_loss` (teacher-forced, label-smoothed; what `course_utils.train.train_for`
  expects) and `mean_loss` (validation);
- the recipe: `translator_config` and `make_translator` turn a recipe dict (`RECIPE_KEYS`:
  TransformerConfig's field names, which are also `train_translator.py`'s arguments) into a config,
  a model, the paper's Adam and its warm-up;
  `save_translator` / `load_translator` write and read a checkpoint folder (model.pt + tokenizer.json);
- the score: `bleu` (sacreBLEU, 13a tokenization), `chrf` and `sentence_scores` (chrF and
  BLEU per sentence) and one format of `test.tsv`
  (`write_test_tsv` / `read_test_tsv`), from which anyone can re-compute a recorded BLEU.

Imports the model (`course_utils.transformer`), never the reverse. Decoding is
`course_utils.decoding` (it uses `pad_batch` from here).
"""

from __future__ import annotations

import csv
import random
import time
from pathlib import Path
from typing import Mapping, Sequence

import sacrebleu
import torch

from course_utils.bytelevel import ByteLevelBPE
from course_utils.checks import check_int, check_number
from course_utils.device import seed_everything
from course_utils.train import label_smoothed_cross_entropy, load_checkpoint, save_checkpoint, warmup_scheduler
from course_utils.transformer import Seq2SeqTransformer, TransformerConfig

__all__ = [
    "batch_by_length",
    "pad_batch",
    "make_batch",
    "encode_pairs",
    "length_batches",
    "shorter_half",
    "curriculum_batches",
    "seq2seq_loss",
    "mean_loss",
    "SPECIAL_TOKENS",
    "shared_tokenizer",
    "config_ids",
    "RECIPE_KEYS",
    "translator_config",
    "make_translator",
    "save_translator",
    "load_translator",
    "bleu",
    "bleu_details",
    "chrf",
    "sentence_scores",
    "TEST_TSV_HEADER",
    "write_test_tsv",
    "read_test_tsv",
]

Pair = tuple[list[int], list[int]]  # (source ids, target ids), without BOS/EOS


# ----------------------------------------------------------------------------- batching
def batch_by_length(lengths: Sequence[int], max_tokens: int, shuffle: bool = True, seed: int = 0) -> list[list[int]]:
    """Group example indices into batches of similar length, each padded batch <= max_tokens tokens.

    Sorting by length means little padding (a batch of 5-token sentences is not padded to 40);
    a batch's cost is (number of sentences) x (its longest), so batches of short sentences hold
    more of them. shuffle: random order of batches (and of equal-length examples), fixed by seed.

    >>> batch_by_length([3, 9, 4, 8], max_tokens=18, shuffle=False)
    [[0, 2], [3, 1]]
    """
    check_int("batch_by_length", "max_tokens", max_tokens)
    lengths = [check_int("batch_by_length", "each of lengths", n) for n in lengths]
    if lengths and max(lengths) > max_tokens:
        raise ValueError(f"batch_by_length: an example of length {max(lengths)} does not fit max_tokens={max_tokens}")
    rng = random.Random(seed)
    keys = [(n, rng.random() if shuffle else i) for i, n in enumerate(lengths)]
    order = sorted(range(len(lengths)), key=lambda i: keys[i])
    batches, current, longest = [], [], 0
    for i in order:
        if current and max(longest, lengths[i]) * (len(current) + 1) > max_tokens:
            batches.append(current)  # adding i would overflow: close the batch
            current, longest = [], 0
        current.append(i)
        longest = max(longest, lengths[i])
    if current:
        batches.append(current)
    if shuffle:
        rng.shuffle(batches)
    return batches


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int) -> torch.Tensor:
    """Right-pad lists of ids to a (B, T_max) long tensor.

    >>> pad_batch([[5, 6, 7], [8]], pad_id=0)
    tensor([[5, 6, 7],
            [8, 0, 0]])
    """
    if not seqs:
        raise ValueError("pad_batch: seqs is empty")
    T = max(len(s) for s in seqs)
    if T == 0:
        raise ValueError("pad_batch: every sequence is empty")
    return torch.tensor([list(s) + [pad_id] * (T - len(s)) for s in seqs], dtype=torch.long)


def make_batch(pairs: Sequence[tuple[Sequence[int], Sequence[int]]], config: TransformerConfig):
    """(source ids, target ids) pairs -> src (B, S), tgt_in (B, T), tgt_out (B, T).

    src = x + [EOS];  tgt_in = [BOS] + y;  tgt_out = y + [EOS]   (tgt_in shifted left by one).
    """
    src = pad_batch([list(x) + [config.eos_id] for x, _ in pairs], config.pad_id)
    tgt_in = pad_batch([[config.bos_id] + list(y) for _, y in pairs], config.pad_id)
    tgt_out = pad_batch([list(y) + [config.eos_id] for _, y in pairs], config.pad_id)
    return src, tgt_in, tgt_out


# ----------------------------------------------------------------------------- training on sentence pairs
def encode_pairs(tokenizer, pairs: Sequence[tuple[str, str]], max_len: int = 64) -> list[Pair]:
    """(german, english) strings -> (source ids, target ids), each cut to max_len - 1 tokens (room for BOS/EOS)."""
    check_int("encode_pairs", "max_len", max_len, low=2)
    return [(tokenizer.encode(de)[: max_len - 1], tokenizer.encode(en)[: max_len - 1]) for de, en in pairs]


def length_batches(
    encoded: Sequence[Pair],
    config: TransformerConfig,
    max_tokens: int,
    seed: int = 0,
    epochs: int | None = None,
    device=None,
):
    """Yield (src, tgt_in, tgt_out) batches grouped by length, reshuffled every epoch; endless if epochs is None.

    A batch's size is counted as (sentences) x (longest side + 1), so every step costs about the same.
    """
    lengths = [max(len(x), len(y)) + 1 for x, y in encoded]
    epoch = 0
    while epochs is None or epoch < epochs:
        for idx in batch_by_length(lengths, max_tokens, shuffle=True, seed=seed + epoch):
            src, tgt_in, tgt_out = make_batch([encoded[i] for i in idx], config)
            yield src.to(device), tgt_in.to(device), tgt_out.to(device)
        epoch += 1


def shorter_half(encoded: Sequence[Pair]) -> list[Pair]:
    """The pairs whose longer side is at most the median length: the first stage of a curriculum."""
    if not encoded:
        raise ValueError("shorter_half: no pairs given; pass encode_pairs(tokenizer, pairs) of a non-empty list")
    lengths = [max(len(x), len(y)) for x, y in encoded]
    median = sorted(lengths)[len(lengths) // 2]
    return [pair for pair, n in zip(encoded, lengths) if n <= median]


def curriculum_batches(
    encoded: Sequence[Pair],
    config: TransformerConfig,
    max_tokens: int,
    short_seconds: float,
    seed: int = 0,
    device=None,
):
    """Length batches of `shorter_half(encoded)` for `short_seconds` of wall clock, then of all pairs (endless).

    A curriculum: short pairs teach word order and frequent words cheaply, before long ones add
    their noise. The clock starts at the first batch drawn; short_seconds=0 turns it off.
    """
    check_number("curriculum_batches", "short_seconds", short_seconds, low=0)
    if short_seconds > 0:
        start = time.perf_counter()
        for batch in length_batches(shorter_half(encoded), config, max_tokens, seed, device=device):
            if time.perf_counter() - start >= short_seconds:
                break
            yield batch
    yield from length_batches(encoded, config, max_tokens, seed, device=device)


def seq2seq_loss(model: Seq2SeqTransformer, batch, smoothing: float = 0.1) -> tuple[torch.Tensor, int]:
    """Teacher-forced, label-smoothed loss of a (src, tgt_in, tgt_out) batch and its number of target tokens.

    The loss function `course_utils.train.train_for` expects: (mean loss per real token, tokens).
    """
    src, tgt_in, tgt_out = batch
    logits = model(src, tgt_in)  # (B, T, V)
    loss = label_smoothed_cross_entropy(logits, tgt_out, smoothing, ignore_index=model.config.pad_id)
    return loss, int((tgt_out != model.config.pad_id).sum())


@torch.no_grad()
def mean_loss(model: Seq2SeqTransformer, batches, smoothing: float = 0.0) -> float:
    """Average per-token loss over batches (smoothing 0: the plain cross-entropy, exp() of it is perplexity)."""
    was_training = model.training
    model.eval()
    total, n = 0.0, 0
    for batch in batches:
        loss, k = seq2seq_loss(model, batch, smoothing)
        total, n = total + float(loss) * k, n + k
    model.train(was_training)
    if n == 0:
        raise ValueError("mean_loss: no target tokens in the batches")
    return total / n


# ----------------------------------------------------------------------------- the tokenizer
SPECIAL_TOKENS = ("<pad>", "<s>", "</s>")


def shared_tokenizer(
    pairs: Sequence[tuple[str, str]], vocab_size: int, cache: str | None = None, progress: bool = False
) -> ByteLevelBPE:
    """A byte-level BPE (notebook 03) trained on both sides of `pairs`: one vocabulary for German and English.

    Special tokens <pad>, <s>, </s> come last (ids vocab_size-3 .. vocab_size-1); `config_ids(tok)`
    gives them as TransformerConfig arguments. cache: a path prefix; if `<cache>.json` exists it is
    loaded instead of retrained (training takes ~10 s per 4k merges on a laptop core).
    """
    if cache is not None and Path(str(cache) + ".json").exists():
        tok = ByteLevelBPE.load(str(cache) + ".json")
        if len(tok) == vocab_size:
            return tok
    text = "\n".join(f"{de}\n{en}" for de, en in pairs)
    tok = ByteLevelBPE(special_tokens=SPECIAL_TOKENS).train(text, vocab_size, progress=progress)
    if cache is not None:
        tok.save(cache)
    return tok


def config_ids(tokenizer) -> dict:
    """{"vocab_size", "pad_id", "bos_id", "eos_id"} of a tokenizer made by `shared_tokenizer`."""
    sp = tokenizer.special_tokens
    return {"vocab_size": len(tokenizer), "pad_id": sp["<pad>"], "bos_id": sp["<s>"], "eos_id": sp["</s>"]}


# ----------------------------------------------------------------------------- the recipe
RECIPE_KEYS = (
    "d_model",
    "n_heads",
    "n_encoder_layers",
    "n_decoder_layers",
    "d_ff",
    "dropout",
    "norm_first",
    "warmup",
    "lr_factor",
)
"""What `make_translator` reads from a recipe: TransformerConfig's names for the sizes (and train_translator.py's
arguments), plus the warm-up. Other keys (vocab, max_tokens, seconds, ...) are the caller's."""

# Checkpoints written before the recipe spoke TransformerConfig's names (heads, layers, decoder_layers, pre_ln)
# may still sit in users' build/ folders: `load_translator` renames their notes' recipe here, and only here.
_OLD_RECIPE_NAMES = {"heads": "n_heads", "layers": "n_encoder_layers", "pre_ln": "norm_first"}


def _renamed_recipe(recipe: Mapping) -> dict:
    """A recipe in today's names; an old one's `layers` was both stacks unless `decoder_layers` was set.

    >>> _renamed_recipe({"heads": 4, "layers": 3, "decoder_layers": None, "pre_ln": True, "vocab": 3000})
    {'n_heads': 4, 'n_encoder_layers': 3, 'n_decoder_layers': 3, 'norm_first': True, 'vocab': 3000}
    """
    renamed = {}
    for key, value in recipe.items():  # in its order: recipe.json reads like the arguments
        if key != "decoder_layers":
            renamed[_OLD_RECIPE_NAMES.get(key, key)] = value
        if key == "layers":
            renamed["n_decoder_layers"] = recipe.get("decoder_layers") or value
    return renamed


def translator_config(recipe: Mapping, tokenizer) -> TransformerConfig:
    """The TransformerConfig of a recipe: its sizes, the tokenizer's ids, positions up to 128 tokens."""
    missing = [k for k in RECIPE_KEYS if k not in recipe]
    if missing:
        raise ValueError(f"translator_config: the recipe lacks {missing}; a recipe names {', '.join(RECIPE_KEYS)}")
    sizes = {k: recipe[k] for k in RECIPE_KEYS if k not in ("warmup", "lr_factor")}  # TransformerConfig's names
    return TransformerConfig(**config_ids(tokenizer), **sizes, max_len=128)


def make_translator(recipe: Mapping, tokenizer, device=None, seed: int | None = None):
    """(model, optimizer, scheduler) of a recipe: a fresh Seq2SeqTransformer, the paper's Adam and warm-up.

    Adam with betas (0.9, 0.98), eps 1e-9 (Vaswani et al. 2017, section 5.3) and base lr 1.0, so the
    scheduler's `warmup_lr(step, d_model, warmup, lr_factor)` is the learning rate. seed: when given,
    every generator is seeded just before the weights are drawn (same seed, same initial model).
    """
    config = translator_config(recipe, tokenizer)
    if seed is not None:
        seed_everything(seed)
    model = Seq2SeqTransformer(config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1.0, betas=(0.9, 0.98), eps=1e-9)
    scheduler = warmup_scheduler(optimizer, config.d_model, recipe["warmup"], recipe["lr_factor"])
    return model, optimizer, scheduler


def save_translator(
    folder: str | Path, model: Seq2SeqTransformer, tokenizer: ByteLevelBPE, *, half: bool = False, **notes
) -> Path:
    """Write `folder/model.pt` (weights, config, notes; fp16 with half=True) and `folder/tokenizer.json`/.vocab."""
    folder = Path(folder)
    path = save_checkpoint(folder / "model.pt", model, model.config, half=half, **notes)
    tokenizer.save(folder / "tokenizer")
    return path


def load_translator(folder: str | Path, device=None) -> tuple[Seq2SeqTransformer, ByteLevelBPE, dict]:
    """(model in eval mode, tokenizer, notes) of a folder written by `save_translator`.

    notes: what was saved beside the weights; for `train_translator.py`'s checkpoints
    {"recipe": its arguments, "results": its figures and BLEU, "valid_curve": ...}, the recipe
    in RECIPE_KEYS' names even when an older checkpoint stored the old ones.
    """
    folder = Path(folder)
    payload = load_checkpoint(folder / "model.pt")
    model = Seq2SeqTransformer(TransformerConfig(**payload["config"])).to(device)
    model.load_state_dict(payload["state_dict"])
    notes = dict(payload["notes"])
    if "recipe" in notes:
        notes["recipe"] = _renamed_recipe(notes["recipe"])
    return model.eval(), ByteLevelBPE.load(folder / "tokenizer.json"), notes


# ----------------------------------------------------------------------------- the score
def _check_pairs(fn: str, hypotheses, references) -> None:
    """Both lists of strings of one length (a single str would be read as a list of characters)."""
    if isinstance(hypotheses, str) or isinstance(references, str) or len(hypotheses) != len(references):
        raise ValueError(
            f"{fn}: hypotheses and references must be lists of strings of the same length, got "
            f"{type(hypotheses).__name__} and {type(references).__name__}"
        )


def bleu_details(hypotheses: Sequence[str], references: Sequence[str]) -> sacrebleu.metrics.BLEUScore:
    """sacreBLEU's corpus BLEU (13a tokenization, one reference each): the score, n-gram precisions, brevity."""
    _check_pairs("bleu", hypotheses, references)
    return sacrebleu.corpus_bleu(list(hypotheses), [list(references)], tokenize="13a")


def bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU (0-100) with sacreBLEU's default 13a tokenization: comparable across papers (Post 2018)."""
    return bleu_details(hypotheses, references).score


def chrf(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus chrF (0-100, sacreBLEU's defaults: character 6-grams, beta = 2; Popovic 2015).

    Characters instead of words: "house" vs "houses" earns partial credit, so chrF is kinder than
    BLEU to a right-but-differently-inflected word, and it is defined for one short sentence
    (BLEU's 4-gram precision is 0 for most).
    """
    _check_pairs("chrf", hypotheses, references)
    return sacrebleu.corpus_chrf(list(hypotheses), [list(references)]).score


def sentence_scores(hypotheses: Sequence[str], references: Sequence[str]) -> list[tuple[float, float]]:
    """(sentence BLEU, sentence chrF) for every pair: the per-sentence view of the corpus scores.

    Sentence BLEU uses sacreBLEU's exponential smoothing (its default), else one missing 4-gram makes it 0.
    """
    _check_pairs("sentence_scores", hypotheses, references)
    return [
        (sacrebleu.sentence_bleu(h, [r], tokenize="13a").score, sacrebleu.sentence_chrf(h, [r]).score)
        for h, r in zip(hypotheses, references)
    ]


TEST_TSV_HEADER = ("de", "reference", "translation")
_TSV = dict(delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\")  # tabs, newlines, backslashes escaped


def write_test_tsv(
    path: str | Path, sources: Sequence[str], references: Sequence[str], translations: Sequence[str]
) -> Path:
    """Write test.tsv: a header (de, reference, translation), then one row per sentence. Returns the path."""
    if not len(sources) == len(references) == len(translations):
        raise ValueError(
            f"write_test_tsv: {len(sources)} sources, {len(references)} references and "
            f"{len(translations)} translations; give one of each per sentence"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, **_TSV)
        writer.writerow(TEST_TSV_HEADER)
        writer.writerows(zip(sources, references, translations))
    return path


def read_test_tsv(path: str | Path) -> list[tuple[str, str, str]]:
    """The (de, reference, translation) rows of a test.tsv written by `write_test_tsv` (header checked, dropped).

    bleu([r[2] for r in rows], [r[1] for r in rows]) re-computes the score recorded with it.
    """
    with open(path, newline="", encoding="utf-8") as f:
        rows = [tuple(r) for r in csv.reader(f, **_TSV)]
    if not rows or rows[0] != TEST_TSV_HEADER:
        raise ValueError(
            f"read_test_tsv: {path} does not start with the header {TEST_TSV_HEADER}; "
            "write it with course_utils.translation.write_test_tsv"
        )
    return rows[1:]
