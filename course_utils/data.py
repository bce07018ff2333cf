"""The course's real data sets, loaded from `data/` after checking their SHA-256.

Every file is shipped in git and listed in `data/SHA256SUMS` (written by
`scripts/build_data.py`, which rebuilds it from its Debian source package).
A missing or damaged file raises `DataError` naming the file and the command
that restores it, instead of a confusing failure three cells later.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
from pathlib import Path

import numpy as np

from course_utils.paths import data_dir

DATA_DIR = data_dir()  # $COURSE_DATA_DIR or the repository's data/

AUSTEN_TITLES = {  # file stem -> title, in publication order
    "sensesensibility": "Sense and Sensibility",
    "prideprejudice": "Pride and Prejudice",
    "mansfieldpark": "Mansfield Park",
    "emma": "Emma",
    "northangerabbey": "Northanger Abbey",
    "persuasion": "Persuasion",
}
FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
_SOURCES = {  # first path component -> (data set, Debian package that rebuilds it, build_data.py argument)
    "de_en_pairs.tsv": ("German-English pairs", "trans-de-en", "pairs"),
    "es_en_bible.tsv": ("Spanish-English Bible verses", "sword-text-sparv sword-text-web", "bible"),
    "de_en_libreoffice.tsv": ("German-English LibreOffice strings", "libreoffice-l10n-de", "libreoffice"),
    "de_en_wesnoth.tsv": (
        "German-English Wesnoth dialogue",
        " ".join(
            f"wesnoth-1.16-{c}" for c in "did dm dw ei httt l low nr sof sota sotbe thot trow tsg ttb utbs".split()
        ),
        "wesnoth",
    ),
    "austen": ("Jane Austen's novels", "r-cran-janeaustenr", "austen"),
    "fashion_mnist": ("Fashion-MNIST", "dataset-fashion-mnist", "fashion"),
}
_verified: dict[str, tuple[float, int]] = {}


class DataError(RuntimeError):
    """A data file is missing or does not match its recorded checksum."""


def _expected_sums() -> dict[str, str]:
    """{relative path: SHA-256} from data/SHA256SUMS."""
    sums = DATA_DIR / "SHA256SUMS"
    if not sums.exists():
        raise DataError(f"{sums} is missing: restore it with `git checkout -- data/SHA256SUMS`")
    pairs = (line.split(maxsplit=1) for line in sums.read_text().splitlines() if line.strip())
    return {name.strip(): digest for digest, name in pairs}


def _fix_hint(relpath: str) -> str:
    """The commands that restore or rebuild data/<relpath>, for an error message."""
    _, package, arg = _SOURCES[relpath.split("/")[0]]
    return (
        f"restore the shipped copy with `git checkout -- data/{relpath}`, or rebuild it from its source with "
        f"`sudo apt-get install {package} && python scripts/build_data.py {arg}`"
    )


def data_path(relpath: str) -> Path:
    """Path of `data/<relpath>` after checking it exists and matches data/SHA256SUMS.

    >>> data_path("de_en_pairs.tsv").name
    'de_en_pairs.tsv'
    """
    expected = _expected_sums()
    if relpath not in expected:
        raise ValueError(f"data_path: {relpath!r} is not a course data file; known files: {sorted(expected)}")
    path = DATA_DIR / relpath
    if not path.exists():
        raise DataError(f"data file data/{relpath} is missing: {_fix_hint(relpath)}")
    stat = path.stat()
    if _verified.get(relpath) != (stat.st_mtime, stat.st_size):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != expected[relpath]:
            raise DataError(
                f"data file data/{relpath} is corrupt or truncated ({stat.st_size:,} bytes, "
                f"SHA-256 {digest[:12]}... but data/SHA256SUMS says {expected[relpath][:12]}...): "
                f"{_fix_hint(relpath)}"
            )
        _verified[relpath] = (stat.st_mtime, stat.st_size)
    return path


def status() -> dict[str, bool]:
    """For each data set, whether all its files are present and intact (no exception)."""
    result = {}
    for top, (title, _, _) in _SOURCES.items():
        try:
            names = [n for n in _expected_sums() if n.split("/")[0] == top]
            for n in names:
                data_path(n)
            result[title] = bool(names)
        except DataError:
            result[title] = False
    return result


TRANSLATION_CORPORA = {  # corpus -> (file, source-language column)
    "ding": ("de_en_pairs.tsv", "de"),  # German -> English dictionary examples, ~18k short sentences
    "bible": ("es_en_bible.tsv", "es"),  # Spanish -> English Bible verses, ~31k, longer and regular
    "libreoffice": ("de_en_libreoffice.tsv", "de"),  # German -> English interface strings, ~12k, literal
    "wesnoth": ("de_en_wesnoth.tsv", "de"),  # German -> English game dialogue, ~11k, freely translated
}


def load_translation_pairs(split: str | None = None, corpus: str = "ding") -> list[tuple[str, str]]:
    """(source, english) sentence pairs of one corpus, or of a union such as "ding+libreoffice".

    split: "train" (~90 %), "valid" (~5 %), "test" (~5 %) or None for all. The split
    is fixed in the file (a hash of the source sentence), so every run agrees.
    corpus: "ding" (German-English dictionary examples, the default), "libreoffice"
    (German-English interface strings), "wesnoth" (German-English game dialogue), "bible"
    (Spanish-English verses; data/README.md),
    or corpora of one source language joined by "+", in that order.
    """
    if split not in (None, "train", "valid", "test"):
        raise ValueError(f"load_translation_pairs: split must be 'train', 'valid', 'test' or None, got {split!r}")
    parts = corpus.split("+") if isinstance(corpus, str) else [corpus]
    unknown = [c for c in parts if c not in TRANSLATION_CORPORA]
    if unknown:
        raise ValueError(
            f"load_translation_pairs: corpus must be one of {list(TRANSLATION_CORPORA)}, or several of one "
            f"language joined by '+' (e.g. 'ding+libreoffice'); got {corpus!r}"
        )
    languages = {TRANSLATION_CORPORA[c][1] for c in parts}
    if len(languages) > 1:
        raise ValueError(
            f"load_translation_pairs: {corpus!r} joins source languages {sorted(languages)}; join one only"
        )
    pairs = []
    for c in parts:
        name, source = TRANSLATION_CORPORA[c]
        with open(data_path(name), encoding="utf-8", newline="") as f:
            rows = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            pairs += [(r[source], r["en"]) for r in rows if split is None or r["split"] == split]
    return pairs


def load_austen() -> dict[str, str]:
    """Jane Austen's six novels, {title: full text}, in publication order (~4.0 M characters).

    >>> books = load_austen(); list(books)[1], len(books)
    ('Pride and Prejudice', 6)
    """
    return {title: data_path(f"austen/{stem}.txt").read_text(encoding="utf-8") for stem, title in AUSTEN_TITLES.items()}


def split_austen(held_out: float = 0.1) -> tuple[dict[str, str], dict[str, str]]:
    """({title: training text}, {title: held-out text}): the last `held_out` share of every novel is held out.

    Held out per novel, not as a whole book, so the test text is "later in the same books"
    for every novel; every language model of notebook 05 (and `scripts/train_gpt.py`) uses
    this split, so their held-out scores are comparable.

    >>> train, held = split_austen()
    >>> round(sum(map(len, held.values())) / (sum(map(len, train.values())) + sum(map(len, held.values()))), 2)
    0.1
    """
    if not 0 < held_out < 1:
        raise ValueError(f"split_austen: held_out is the share of each novel held out, in (0, 1); got {held_out!r}")
    books = load_austen()
    cut = {title: int(len(text) * (1 - held_out)) for title, text in books.items()}
    return {t: books[t][: cut[t]] for t in books}, {t: books[t][cut[t] :] for t in books}


def _read_idx(relpath: str) -> np.ndarray:
    """Parse an IDX file (the MNIST format): magic, dimension sizes (big-endian int32), uint8 data."""
    raw = gzip.decompress(data_path(relpath).read_bytes())
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_fashion_mnist(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST images (N, 28, 28) uint8 and labels (N,) int64; N = 60,000 (train) or 10,000 (test).

    Class names are in `FASHION_CLASSES`.
    """
    prefix = {"train": "train", "test": "t10k"}.get(split)
    if prefix is None:
        raise ValueError(f"load_fashion_mnist: split must be 'train' or 'test', got {split!r}")
    images = _read_idx(f"fashion_mnist/{prefix}-images-idx3-ubyte.gz")
    labels = _read_idx(f"fashion_mnist/{prefix}-labels-idx1-ubyte.gz").astype(np.int64)
    return images, labels
