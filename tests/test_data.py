"""The shipped data sets: sizes the issue promises, checksums, and helpful errors when a file is damaged."""

import hashlib
import re
import shutil

import numpy as np
import pytest
from course_utils import data


def test_translation_pairs():
    pairs = data.load_translation_pairs()
    assert len(pairs) >= 15_000
    splits = {s: data.load_translation_pairs(s) for s in ("train", "valid", "test")}
    assert sum(map(len, splits.values())) == len(pairs)
    assert 800 <= len(splits["test"]) <= 1200 and 800 <= len(splits["valid"]) <= 1200
    assert not set(splits["test"]) & set(splits["train"]), "test pairs leak into train"
    for de, en in pairs[:2000]:
        assert de[-1] in ".?!" and en[-1] in ".?!" and len(de.split()) >= 3 and len(en.split()) >= 3
        assert not re.search(r"\{[a-z]+\}|\[[a-z. ]+\]", de + en), (de, en)  # annotations removed


def test_translation_split_validation():
    with pytest.raises(ValueError, match="split"):
        data.load_translation_pairs("dev")
    with pytest.raises(ValueError, match="corpus must be one of"):
        data.load_translation_pairs("train", corpus="europarl")
    with pytest.raises(ValueError, match="one only"):
        data.load_translation_pairs("train", corpus="ding+bible")  # German and Spanish sources


@pytest.mark.parametrize(
    ("corpus", "example"),
    [
        ("libreoffice", ("Text einfügen", "Insert Text")),
        ("wesnoth", ("Nein! Das ist das Ende!", "No! This is the end!")),
    ],
)
def test_catalogue_strings(corpus, example):
    pairs = data.load_translation_pairs(corpus=corpus)
    assert len(pairs) >= 10_000
    splits = {s: data.load_translation_pairs(s, corpus) for s in ("train", "valid", "test")}
    assert sum(map(len, splits.values())) == len(pairs)
    assert not {de for de, _ in splits["test"]} & {de for de, _ in splits["train"]}, "test strings leak into train"
    assert len({en for _, en in pairs}) == len(pairs), "one translation per English original"
    assert example in pairs
    for de, en in pairs:
        for text in (de, en):  # accelerators ("Re_place", "~All"), contexts ("race^"), placeholders, markup removed
            assert "~" not in text and not re.search(r"_\w|%\d|\$\(|<|^[a-z_]+\^", text), (de, en)
        assert len(de.split()) >= 2 and len(en.split()) >= 2 and de != en, (de, en)


def _mo(entries: list[tuple[str, str]]) -> bytes:
    """A little-endian gettext .mo file holding `entries` (original, translation), as msgfmt writes one."""
    import struct

    originals = [o.encode() for o, _ in entries]
    translations = [t.encode() for _, t in entries]
    n, head = len(entries), 28
    table_o, table_t = head, head + 8 * n
    offset, blobs, rows_o, rows_t = table_t + 8 * n, b"", [], []
    for column, rows in ((originals, rows_o), (translations, rows_t)):
        for b in column:
            rows.append((len(b), offset + len(blobs)))
            blobs += b + b"\0"
    out = struct.pack("<7I", 0x950412DE, 0, n, table_o, table_t, 0, 0)
    out += b"".join(struct.pack("<2I", *r) for r in rows_o + rows_t)
    return out + blobs


def test_read_mo_drops_header_context_and_plural_and_rejects_other_files(tmp_path):
    from course_utils.tools import catalogues

    mo = tmp_path / "x.mo"
    mo.write_bytes(
        _mo(
            [
                ("", "Content-Type: text/plain; charset=UTF-8"),  # the header entry
                ("menu\x04Re_place ~All", "Alle er_setzen"),  # a context, accelerators
                ("%1 file\x00%1 files", "%1 Datei\x00%1 Dateien"),  # a plural, with placeholders
                ("Insert Text", "Text einfügen"),
                ("Insert Text", "Text hinzufügen"),  # a second translation of one original: the first wins
                ("Reports", "Berichte"),  # one word: a label, not text
            ]
        )
    )
    assert list(catalogues.read_mo(mo))[:2] == [("Re_place ~All", "Alle er_setzen"), ("%1 file", "%1 Datei")]
    assert catalogues.string_pairs(tmp_path) == [("Alle ersetzen", "Replace All"), ("Text einfügen", "Insert Text")]
    bad = tmp_path / "y.mo"
    bad.write_bytes(b"not a catalogue at all")
    with pytest.raises(ValueError, match="not a gettext .mo file"):
        list(catalogues.read_mo(bad))


def test_union_of_corpora():
    union = data.load_translation_pairs("test", "ding+libreoffice")
    assert union == data.load_translation_pairs("test") + data.load_translation_pairs("test", "libreoffice")


def test_bible_verse_pairs():
    pairs = data.load_translation_pairs(corpus="bible")
    assert len(pairs) >= 30_000
    splits = {s: data.load_translation_pairs(s, "bible") for s in ("train", "valid", "test")}
    assert sum(map(len, splits.values())) == len(pairs)
    assert 1300 <= len(splits["test"]) <= 1700 and 1300 <= len(splits["valid"]) <= 1700
    assert not {es for es, _ in splits["test"]} & {es for es, _ in splits["train"]}, "test verses leak into train"
    assert ("Y lloró Jesús.", "Jesus wept.") in pairs  # John 11:35, aligned verse for verse
    for es, en in pairs:
        assert "<" not in es + en and "  " not in es + en, (es, en)  # markup and stray spaces cleaned
        assert 0.5 <= len(en.split()) / len(es.split()) <= 2.0, (es, en)  # misaligned chapters dropped
    assert not any("Glossary" in en for _, en in pairs), "the WEB glossary is not a verse"


def test_austen():
    books = data.load_austen()
    assert list(books) == list(data.AUSTEN_TITLES.values())
    assert sum(map(len, books.values())) >= 3_000_000
    assert "It is a truth universally acknowledged" in books["Pride and Prejudice"]
    assert "Emma Woodhouse, handsome, clever, and rich" in books["Emma"]


def test_fashion_mnist():
    x, y = data.load_fashion_mnist("train")
    xt, yt = data.load_fashion_mnist("test")
    assert x.shape == (60_000, 28, 28) and xt.shape == (10_000, 28, 28) and x.dtype == np.uint8
    assert y.shape == (60_000,) and yt.shape == (10_000,)
    assert np.bincount(y).tolist() == [6000] * 10 and np.bincount(yt).tolist() == [1000] * 10
    assert len(data.FASHION_CLASSES) == 10
    with pytest.raises(ValueError, match="split"):
        data.load_fashion_mnist("valid")


def test_readme_lists_every_file_with_its_checksum():
    readme = (data.DATA_DIR / "README.md").read_text()
    for name, digest in data._expected_sums().items():
        assert name in readme and digest in readme, f"data/README.md must list {name} with its SHA-256"


def test_sums_match_files():
    for name, digest in data._expected_sums().items():
        assert hashlib.sha256((data.DATA_DIR / name).read_bytes()).hexdigest() == digest, name


@pytest.fixture
def data_copy(tmp_path, monkeypatch):
    """A copy of data/ the test may damage."""
    copy = tmp_path / "data"
    shutil.copytree(data.DATA_DIR, copy)
    monkeypatch.setattr(data, "DATA_DIR", copy)
    monkeypatch.setattr(data, "_verified", {})
    return copy


def test_truncated_file_names_the_file_and_the_fix(data_copy):
    f = data_copy / "de_en_pairs.tsv"
    f.write_bytes(f.read_bytes()[:1000])
    with pytest.raises(data.DataError) as err:
        data.load_translation_pairs()
    msg = str(err.value)
    assert "data/de_en_pairs.tsv" in msg and "corrupt or truncated" in msg
    assert "git checkout -- data/de_en_pairs.tsv" in msg and "scripts/build_data.py pairs" in msg


def test_missing_file_names_the_file_and_the_fix(data_copy):
    (data_copy / "fashion_mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(
        data.DataError, match=r"data/fashion_mnist/t10k-labels-idx1-ubyte.gz is missing.*dataset-fashion-mnist"
    ):
        data.load_fashion_mnist("test")
    assert data.status()["Fashion-MNIST"] is False
