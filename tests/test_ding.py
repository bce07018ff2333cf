"""course_utils.tools.ding: the Debian trans-de-en dictionary parser behind data/de_en_pairs.tsv."""

import pytest

from course_utils.tools.ding import DING, clean, ding_pairs, ding_parts, is_sentence, read_dictionary

LINE = "Abschied {m} | Abschied nehmen | Er verabschiedete sich. :: leave | to take leave | He took leave."


def test_one_dictionary_line_gives_its_parts_and_its_one_sentence_pair():
    assert list(ding_parts(LINE)) == [
        (0, ["Abschied"], ["leave"]),
        (1, ["Abschied nehmen"], ["to take leave"]),
        (2, ["Er verabschiedete sich."], ["He took leave."]),
    ]
    assert list(ding_pairs(LINE)) == [("Er verabschiedete sich.", "He took leave.")]


def test_comments_and_lines_with_unequal_parts_are_skipped():
    text = "# Version :: devel\nHaus {n} | Häuser {pl} :: house\nKatze {f} :: cat"
    assert list(ding_parts(text)) == [(0, ["Katze"], ["cat"])]


def test_alternatives_are_zipped_or_paired_with_a_single_one_opposite():
    assert list(ding_pairs("Wie geht es dir?; Wie geht es Ihnen? :: How are you?")) == [
        ("Wie geht es dir?", "How are you?"),
        ("Wie geht es Ihnen?", "How are you?"),
    ]
    assert list(ding_pairs("Ich bin hier.; Du bist da. :: I am here.; You are there.")) == [
        ("Ich bin hier.", "I am here."),
        ("Du bist da.", "You are there."),
    ]


def test_the_sentence_filter():
    assert is_sentence("Das ist Ansichtssache.") and is_sentence("Wie wär’s mit einem Bierchen?")
    assert not is_sentence("Guten Morgen!"), "fewer than 3 words"
    assert not is_sentence("Abschied nehmen von"), "no final . ? !"
    assert not is_sentence("Er kam und/oder ging."), "a slash choice"
    assert not is_sentence("to take leave of sb."), "ends in a placeholder abbreviation"
    # one alternative that is no sentence drops the whole part
    assert list(ding_pairs("Guten Morgen!; Guten Tag, Frau Meier! :: Good morning!")) == []


def test_annotations_are_removed():
    assert clean("Ärger {m} [ugs.]  (im Bauch)") == "Ärger"
    assert clean("jdm. (etw.) geben {vt}") == "jdm. geben"


def test_a_missing_dictionary_says_which_package_to_install(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install trans-de-en"):
        read_dictionary(tmp_path / "de-en")


@pytest.mark.skipif(not DING.exists(), reason="needs Debian's trans-de-en (apt-get install trans-de-en)")
def test_the_installed_dictionary_gives_the_pairs_of_the_data_set():
    pairs = set(ding_pairs(read_dictionary()))
    assert ("Das ist Ansichtssache.", "That’s a matter of opinion.") in pairs and len(pairs) > 18_000
