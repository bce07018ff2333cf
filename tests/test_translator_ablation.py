"""scripts/translator_ablation.py: the dictionary pairs it adds, and one short run of a variant."""

import importlib.util
import re

import pytest

from course_utils.data import load_translation_pairs
from course_utils.paths import ROOT
from course_utils.tools.ding import DING
from course_utils.translation import RECIPE_KEYS

SCRIPT = ROOT / "scripts" / "translator_ablation.py"
spec = importlib.util.spec_from_file_location("translator_ablation", SCRIPT)
ablation = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ablation)


@pytest.mark.skipif(not DING.exists(), reason="needs Debian's trans-de-en (apt-get install trans-de-en)")
def test_dictionary_pairs_are_the_ones_the_readme_measured():
    train = load_translation_pairs("train")
    words, phrases = ablation.dictionary_pairs("words", train), ablation.dictionary_pairs("phrases", train)
    assert (len(words), len(phrases)) == (13_177, 36_249), "the README's ablation used exactly these sets"
    seen_de = {w for d, _ in train for w in re.findall(r"\w+", d.lower())}
    for d, _ in words:
        assert all(w in seen_de for w in re.findall(r"\w+", d.lower())), d
        assert len(d.split()) <= 4 and not d.endswith((".", "?", "!")), d
    assert all(len(d.split()) >= 3 and "sth." not in e and "etw." not in d for d, e in phrases)
    assert not set(phrases) & set(train), "dictionary phrases must not repeat the sentence pairs"


def test_unknown_variant_is_refused(capsys):
    with pytest.raises(SystemExit):
        ablation.main(["--only", "base,bigger"])
    assert "unknown variant(s) ['bigger']" in capsys.readouterr().err


def test_a_short_run_with_weight_averaging_and_a_curriculum_returns_its_scores():
    spec = {
        **ablation.BASE,
        **ablation.VARIANTS["ema_no_cooldown"],
        "curriculum": 0.5,
        "d_model": 32,
        "n_heads": 2,
        "d_ff": 64,
    }
    r = ablation.run("ema_no_cooldown", spec, steps=4, n_valid=4)
    assert r["extra_pairs"] == 0 and r["valid_loss"] > 0 and 0 <= r["bleu"] <= 100
    assert len(r["example"]) == 3


def test_variants_are_changes_to_the_base_recipe():
    assert ablation.VARIANTS["base"] == {} and all(set(v) <= set(ablation.BASE) for v in ablation.VARIANTS.values())
    assert set(RECIPE_KEYS) <= set(ablation.BASE), "the base recipe speaks make_translator's names"
