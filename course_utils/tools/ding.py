"""The Ding German-English dictionary (Debian's trans-de-en), parsed: where data/de_en_pairs.tsv comes from.

Course tooling, not a lesson: `scripts/build_data.py` makes the translation data set from the
dictionary's sentence pairs (`ding_pairs`), and `scripts/translator_ablation.py` adds word and
phrase pairs from the same lines (`ding_parts`), cleaned exactly the same way.

A dictionary line is `de_1 | de_2 :: en_1 | en_2`: the i-th parts translate each other, and each
part may list alternatives split by `; `. One line, parsed:

>>> line = "Abschied {m} | Abschied nehmen | Er verabschiedete sich. :: leave | to take leave | He took leave."
>>> for part in ding_parts(line):
...     print(part)
(0, ['Abschied'], ['leave'])
(1, ['Abschied nehmen'], ['to take leave'])
(2, ['Er verabschiedete sich.'], ['He took leave.'])
>>> list(ding_pairs(line))    # only full sentences make the data set
[('Er verabschiedete sich.', 'He took leave.')]
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

__all__ = ["DING", "PACKAGE", "read_dictionary", "clean", "is_sentence", "ding_parts", "ding_pairs"]

DING = Path("/usr/share/trans/de-en")  # where Debian's package puts the dictionary
PACKAGE = "trans-de-en"

_ANNOTATION = re.compile(r"\s*(\{[^}]*\}|\[[^\]]*\]|\([^)]*\))")  # {f} [coll.] (optional words)


def read_dictionary(path: str | Path = DING) -> str:
    """The dictionary's text; a missing file says which Debian package to install."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: install it with `sudo apt-get install {PACKAGE}`")
    return path.read_text(encoding="utf-8")


def clean(s: str) -> str:
    """An entry without its annotations ({f}, [coll.], (optional words)) and with single spaces.

    >>> clean("Ärger {m} [ugs.]  (im Bauch)")
    'Ärger'
    """
    return re.sub(r"\s+", " ", _ANNOTATION.sub("", s)).strip()


def is_sentence(s: str) -> bool:
    """A full sentence: ends in . ? !, has >= 3 words, no abbreviation placeholder or slash choice.

    >>> is_sentence("Er verabschiedete sich."), is_sentence("Guten Morgen!"), is_sentence("to stagger sb.")
    (True, False, False)
    """
    if s[-1:] not in ".?!" or len(s.split()) < 3 or "/" in s:
        return False
    return not re.search(r"\b(etw|jdm|jdn|jds|sth|sb|sb's)\.$", s)


def ding_parts(text: str) -> Iterator[tuple[int, list[str], list[str]]]:
    """Yield (part number, German alternatives, English alternatives) from the dictionary's lines.

    Comment lines (`#`) and lines whose sides have different numbers of parts are skipped;
    every alternative is `clean`ed.
    """
    for line in text.splitlines():
        if line.startswith("#") or " :: " not in line:
            continue
        de, en = line.split(" :: ", 1)
        de_parts, en_parts = de.split(" | "), en.split(" | ")
        if len(de_parts) != len(en_parts):
            continue
        for i, (d, e) in enumerate(zip(de_parts, en_parts)):
            yield i, [clean(x) for x in d.split("; ")], [clean(x) for x in e.split("; ")]


def ding_pairs(text: str) -> Iterator[tuple[str, str]]:
    """Yield (german, english) sentence pairs from the dictionary's lines: parts whose every alternative
    `is_sentence`.

    Alternatives are zipped when both sides list as many, and a single one is paired with
    each alternative opposite.

    >>> list(ding_pairs("Wie geht es dir?; Wie geht es Ihnen? :: How are you?"))
    [('Wie geht es dir?', 'How are you?'), ('Wie geht es Ihnen?', 'How are you?')]
    """
    for _, ds, es in ding_parts(text):
        if not all(is_sentence(x) for x in ds + es):
            continue
        if len(ds) == len(es):
            yield from zip(ds, es)
        elif len(ds) == 1:
            yield from ((ds[0], x) for x in es)
        elif len(es) == 1:
            yield from ((x, es[0]) for x in ds)
