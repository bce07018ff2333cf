"""course_utils.number_words: spellings checked by hand, a round trip over every number, the split."""

import pytest

from course_utils.number_words import LIMIT, english, german, number_pairs, number_split, parse_english, parse_german


@pytest.mark.parametrize(
    "n, de, en",
    [
        (0, "null", "zero"),
        (1, "eins", "one"),
        (16, "sechzehn", "sixteen"),
        (17, "siebzehn", "seventeen"),
        (21, "einundzwanzig", "twenty-one"),
        (30, "dreißig", "thirty"),
        (77, "siebenundsiebzig", "seventy-seven"),
        (100, "hundert", "one hundred"),
        (101, "hunderteins", "one hundred one"),
        (324, "dreihundertvierundzwanzig", "three hundred twenty-four"),
        (1000, "tausend", "one thousand"),
        (1001, "tausendeins", "one thousand one"),
        (21_000, "einundzwanzigtausend", "twenty-one thousand"),
        (100_000, "hunderttausend", "one hundred thousand"),
        (101_001, "hunderteintausendeins", "one hundred one thousand one"),
        (999_999, "neunhundertneunundneunzigtausendneunhundertneunundneunzig",
         "nine hundred ninety-nine thousand nine hundred ninety-nine"),
    ],
)  # fmt: skip
def test_spellings(n, de, en):
    assert german(n) == de and english(n) == en
    assert parse_german(de) == n and parse_english(en) == n


def test_round_trip_over_a_big_sample():
    """Every number below 3,000 (all the small-number rules), then every 37th up to 999,999 (27k more)."""
    numbers = list(range(3000)) + list(range(3000, LIMIT, 37)) + [LIMIT - 1]
    seen_de, seen_en = set(), set()
    for n in numbers:
        de, en = german(n), english(n)
        assert parse_german(de) == n, de
        assert parse_english(en) == n, en
        seen_de.add(de)
        seen_en.add(en)
    assert len(seen_de) == len(seen_en) == len(numbers)  # no two numbers share a spelling


def test_bad_words_are_refused_with_a_reason():
    for bad in ["einstausend", "zweiundzwanzigeins", "foo", "einhundert"]:
        with pytest.raises(ValueError, match="parse_german"):
            parse_german(bad)
    with pytest.raises(ValueError, match="parse_english"):
        parse_english("twenty four hundred and one")
    with pytest.raises(ValueError, match="n"):
        german(LIMIT)


def test_split_is_seeded_and_disjoint():
    train, test = number_split(0, 5000, 500)
    assert len(set(train)) == 5000 and len(set(test)) == 500 and not set(train) & set(test)
    assert (train, test) == number_split(0, 5000, 500)
    assert number_split(1, 5000, 500) != (train, test)
    assert number_pairs([324]) == [("dreihundertvierundzwanzig", "three hundred twenty-four")]
    with pytest.raises(ValueError, match="do not fit"):
        number_split(0, 8, 3, limit=10)
