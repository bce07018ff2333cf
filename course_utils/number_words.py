"""Number words, German and English, 0 to 999,999: notebook 04's first translation task.

"dreihundertvierundzwanzig" -> "three hundred twenty-four". German writes a number as one word
and says the units before the tens ("vier-und-zwanzig", four-and-twenty), English says the tens
first: a translator must look *ahead* in the source, so its cross-attention map crosses.
The data is generated here (no file), and `number_split` keeps the held-out numbers out of
training, so exact match on them measures generalisation, not memory.

German rules used: 1 is "eins" alone and at the end ("hunderteins"), "ein" before "und",
"hundert" and "tausend" ("einundzwanzig", "einhunderteintausend" is written
"hunderteintausend"); a leading one hundred or one thousand is plain "hundert" / "tausend"
("hunderttausend" = 100,000). English: "one hundred", "twenty-four", no "and".
Both directions parse back (`parse_german`, `parse_english`): tests round-trip every number.

Imports nothing from the course.
"""

from __future__ import annotations

import random

from course_utils.checks import check_int

__all__ = ["LIMIT", "german", "english", "parse_german", "parse_english", "number_split", "number_pairs"]

LIMIT = 1_000_000  # numbers 0 .. LIMIT - 1

_DE_SMALL = [
    "null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun",
    "zehn", "elf", "zwölf", "dreizehn", "vierzehn", "fünfzehn", "sechzehn", "siebzehn", "achtzehn", "neunzehn",
]  # fmt: skip
_DE_TENS = ["", "", "zwanzig", "dreißig", "vierzig", "fünfzig", "sechzig", "siebzig", "achtzig", "neunzig"]
_EN_SMALL = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
]  # fmt: skip
_EN_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def _check(fn: str, n: int) -> int:
    return check_int(fn, "n", n, low=0, high=LIMIT - 1)


def _de_unit(u: int) -> str:
    """A unit digit inside a compound: "ein" for 1 ("einundzwanzig", "einhundert")."""
    return "ein" if u == 1 else _DE_SMALL[u]


def _de_below_100(n: int) -> str:
    """1..99 as German ("" for 0): units before tens, joined by "und"."""
    if n == 0:
        return ""
    if n < 20:
        return _DE_SMALL[n]
    tens, units = divmod(n, 10)
    return (_de_unit(units) + "und" if units else "") + _DE_TENS[tens]


def _de_below_1000(n: int) -> str:
    """1..999 as German ("" for 0); a leading one hundred is "hundert"."""
    hundreds, rest = divmod(n, 100)
    head = "" if hundreds == 0 else ("hundert" if hundreds == 1 else _DE_SMALL[hundreds] + "hundert")
    return head + _de_below_100(rest)


def german(n: int) -> str:
    """n (0..999,999) as one German word. german(324) == "dreihundertvierundzwanzig".

    >>> german(21), german(101), german(100_000), german(1001)
    ('einundzwanzig', 'hunderteins', 'hunderttausend', 'tausendeins')
    """
    n = _check("german", n)
    if n == 0:
        return "null"
    thousands, rest = divmod(n, 1000)
    head = ""
    if thousands == 1:
        head = "tausend"
    elif thousands:
        word = _de_below_1000(thousands)
        head = (word[:-1] if word.endswith("eins") else word) + "tausend"  # "einundzwanzigtausend", "hunderteintausend"
    return head + _de_below_1000(rest)


def _en_below_1000(n: int) -> str:
    """1..999 as English words ("" for 0)."""
    hundreds, rest = divmod(n, 100)
    words = [_EN_SMALL[hundreds], "hundred"] if hundreds else []
    if rest:
        tens, units = divmod(rest, 10)
        if rest < 20:
            words.append(_EN_SMALL[rest])
        else:
            words.append(_EN_TENS[tens] + ("-" + _EN_SMALL[units] if units else ""))
    return " ".join(words)


def english(n: int) -> str:
    """n (0..999,999) in English words. english(324) == "three hundred twenty-four".

    >>> english(0), english(100_000), english(21_007)
    ('zero', 'one hundred thousand', 'twenty-one thousand seven')
    """
    n = _check("english", n)
    if n == 0:
        return "zero"
    thousands, rest = divmod(n, 1000)
    parts = [_en_below_1000(thousands) + " thousand"] if thousands else []
    if rest:
        parts.append(_en_below_1000(rest))
    return " ".join(parts)


def _fail(fn: str, text: str, why: str):
    raise ValueError(f"{fn}: cannot read {text!r} as a number word ({why}); write it as {fn.split('_')[1]}(n) does")


def _parse_de_below_100(word: str, text: str) -> int:
    if word == "":
        return 0
    small = {w: i for i, w in enumerate(_DE_SMALL) if i > 0}
    if word in small:
        return small[word]
    tens = {w: i * 10 for i, w in enumerate(_DE_TENS) if w}
    units_part, _, tens_part = word.rpartition("und")
    if tens_part in tens:
        if not units_part:
            return tens[tens_part]
        unit = {"ein": 1, **{_DE_SMALL[u]: u for u in range(2, 10)}}.get(units_part)
        if unit is not None:
            return tens[tens_part] + unit
    _fail("parse_german", text, f"unknown part {word!r}")


def _parse_de_below_1000(word: str, text: str) -> int:
    if "hundert" not in word:
        return _parse_de_below_100(word, text)
    head, _, rest = word.partition("hundert")
    units = {"": 1, **{_DE_SMALL[u]: u for u in range(2, 10)}}
    if head not in units:
        _fail("parse_german", text, f"{head!r} before 'hundert'")
    return 100 * units[head] + _parse_de_below_100(rest, text)


def parse_german(text: str) -> int:
    """The number a German number word names: parse_german("dreihundertvierundzwanzig") == 324."""
    word = text.strip().lower()
    if word == "null":
        return 0
    if "tausend" in word:
        head, _, rest = word.partition("tausend")
        if head.endswith("eins"):
            _fail("parse_german", text, "'eins' before 'tausend' is written 'ein'")
        thousands = (
            1 if head == "" else _parse_de_below_1000(head[:-3] + "eins" if head.endswith("ein") else head, text)
        )
        n = 1000 * thousands + _parse_de_below_1000(rest, text)
    else:
        n = _parse_de_below_1000(word, text)
    if n == 0 or german(n) != word:
        _fail("parse_german", text, "not the standard spelling")
    return n


def parse_english(text: str) -> int:
    """The number English words name: parse_english("three hundred twenty-four") == 324."""
    words = text.strip().lower().split()
    small = {w: i for i, w in enumerate(_EN_SMALL)}
    tens = {w: i * 10 for i, w in enumerate(_EN_TENS) if w}
    total, group = 0, 0
    for w in words:
        if w in small:
            group += small[w]
        elif w in tens:
            group += tens[w]
        elif "-" in w and w.split("-")[0] in tens and w.split("-")[1] in small:
            group += tens[w.split("-")[0]] + small[w.split("-")[1]]
        elif w == "hundred":
            group *= 100
        elif w == "thousand":
            total, group = total + group * 1000, 0
        else:
            _fail("parse_english", text, f"unknown word {w!r}")
    n = total + group
    if not 0 <= n < LIMIT or english(n) != " ".join(words):
        _fail("parse_english", text, "not the standard spelling")
    return n


def number_split(seed: int, n_train: int, n_test: int, limit: int = LIMIT) -> tuple[list[int], list[int]]:
    """Two disjoint random sets of numbers below `limit`: n_train to train on, n_test held out.

    Seeded, so the notebook and its tests draw the same numbers; no held-out number is ever trained on.
    """
    check_int("number_split", "limit", limit, low=1, high=LIMIT)
    check_int("number_split", "n_train", n_train, low=0)
    check_int("number_split", "n_test", n_test, low=0)
    if n_train + n_test > limit:
        raise ValueError(f"number_split: n_train + n_test = {n_train + n_test} numbers do not fit below limit={limit}")
    drawn = random.Random(seed).sample(range(limit), n_train + n_test)
    return drawn[:n_train], drawn[n_train:]


def number_pairs(numbers) -> list[tuple[str, str]]:
    """(German, English) word pairs for the given numbers: the parallel corpus of the number task."""
    return [(german(n), english(n)) for n in numbers]
