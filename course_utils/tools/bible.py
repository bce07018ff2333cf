"""The Reina-Valera 1909 (Spanish) and World English Bible (2015), verse by verse: where data/es_en_bible.tsv comes from.

Course tooling, not a lesson: `scripts/build_data.py` reads both SWORD modules that Debian
ships (`sword-text-sparv`, `sword-text-web`; both public domain) with the PyPI package
`pysword` and pairs the verses that share a book, chapter and verse number. A verse comes
as OSIS markup; `clean` keeps the words a reader sees:

>>> clean('<w lemma="x">En</w> el principio<note type="study">1:1 a note</note> crió Dios .')
'En el principio crió Dios.'
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

__all__ = ["SWORD", "SPANISH", "ENGLISH", "PACKAGES", "clean", "verses", "verse_pairs", "aligned"]

SWORD = Path("/usr/share/sword")  # where Debian's sword-text-* packages put their modules
SPANISH, ENGLISH = "spaRV1909eb", "engWEB2015eb"
PACKAGES = "sword-text-sparv sword-text-web"

_NOTE = re.compile(r"<note\b.*?</note>", re.S)  # footnotes and cross-references: not the verse
_TAG = re.compile(r"<[^>]+>")


def clean(raw: str) -> str:
    """The text of one OSIS verse: notes dropped, tags stripped, entities decoded, spaces tidied."""
    s = _TAG.sub(" ", _NOTE.sub(" ", raw))
    s = re.sub(r"\s+", " ", html.unescape(s)).strip()
    s = re.sub(r" ([,.;:!?’”)])", r"\1", s)  # no space before closing punctuation
    return re.sub(r"([“‘(]) ", r"\1", s)  # nor after opening punctuation


def verses(module: str) -> dict[str, str]:
    """{"Gen.1.1": cleaned text} for every verse of a SWORD module (about a minute each)."""
    from pysword.modules import SwordModules  # build-time only: `pip install pysword`

    modules = SwordModules(str(SWORD))
    modules.parse_modules()
    bible = modules.get_bible_from_module(module)
    out = {}
    for books in bible.get_structure().get_books().values():
        for book in books:
            for chapter, length in enumerate(book.chapter_lengths, start=1):
                for verse in range(1, length + 1):
                    raw = bible.get(books=[book.name], chapters=[chapter], verses=[verse], clean=False)
                    out[f"{book.osis_name}.{chapter}.{verse}"] = clean(raw)
    return out


def verse_pairs(spanish: dict[str, str], english: dict[str, str]) -> Iterator[tuple[str, str, str]]:
    """(key, spanish, english) for each verse both texts have, in canonical order.

    >>> list(verse_pairs({"Jn.11.35": "Y lloró Jesús.", "Jn.11.36": ""}, {"Jn.11.35": "Jesus wept.", "Jn.11.36": "So"}))
    [('Jn.11.35', 'Y lloró Jesús.', 'Jesus wept.')]
    """
    for key, es in spanish.items():
        en = english.get(key, "")
        if es and en and "\t" not in es + en:
            yield key, es, en


def _words_ratio(es: str, en: str) -> float:
    return len(en.split()) / max(1, len(es.split()))


def aligned(pairs: list[tuple[str, str, str]], low: float = 0.5, high: float = 2.0) -> list[tuple[str, str, str]]:
    """The pairs of chapters whose verses line up: both texts number some chapters differently.

    The two modules follow different versifications (KJV and NRSVA), so in a few chapters
    verse n of one is verse n+1 of the other, and every pair there is wrong. Such a chapter
    shows as verses whose English/Spanish word-count ratio leaves [low, high]; a chapter with
    two or more of them is dropped whole, and a lone outlier verse is dropped by itself.

    >>> ok = [("Gen.1.1", "uno dos tres", "one two three"), ("Gen.1.2", "a b", "a b")]
    >>> off = [("Num.13.1", "a", "a b c"), ("Num.13.2", "a b c d", "a"), ("Num.13.3", "a b", "a b")]
    >>> [key for key, _, _ in aligned(ok + off)]
    ['Gen.1.1', 'Gen.1.2']
    """
    bad: dict[str, int] = {}
    for key, es, en in pairs:
        if not low <= _words_ratio(es, en) <= high:
            chapter = key.rsplit(".", 1)[0]
            bad[chapter] = bad.get(chapter, 0) + 1
    return [
        (key, es, en)
        for key, es, en in pairs
        if bad.get(key.rsplit(".", 1)[0], 0) < 2 and low <= _words_ratio(es, en) <= high
    ]
