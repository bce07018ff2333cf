"""Rebuild every file in data/ from its Debian source package, then write data/SHA256SUMS.

    apt-get install trans-de-en dataset-fashion-mnist r-cran-janeaustenr sword-text-sparv sword-text-web
    pip install rdata pysword               # readers for the R data and the SWORD modules
    python scripts/build_data.py            # all four data sets
    python scripts/build_data.py austen     # just one

The course ships the results in git, so students never need this; it exists so
anyone can check where each byte came from (see data/README.md).
"""

import argparse
import bz2
import gzip
import hashlib
import lzma
import shutil
import struct
import sys
import warnings
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository, for course_utils.paths
from course_utils.paths import data_dir  # noqa: E402
from course_utils.tools import bible  # noqa: E402  (the SWORD reader)
from course_utils.tools import catalogues  # noqa: E402  (the gettext reader)
from course_utils.tools.ding import DING, PACKAGE, ding_pairs, read_dictionary  # noqa: E402  (the Ding parser)

DATA = data_dir()  # data/ of the repository ($COURSE_DATA_DIR rebuilds another copy)
AUSTEN_R = Path("/usr/lib/R/site-library/janeaustenr/data")
FASHION = Path("/usr/share/datasets/fashion-mnist")
FASHION_FILES = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
]
AUSTEN_NOVELS = [
    "sensesensibility",
    "prideprejudice",
    "mansfieldpark",
    "emma",
    "northangerabbey",
    "persuasion",
]  # publication order


def need(path: Path, package: str) -> None:
    if not path.exists():
        sys.exit(f"{path} not found: install it with `sudo apt-get install {package}`")


# --- German-English pairs -------------------------------------------------
def split_of(german: str) -> str:
    """A fixed split by a hash of the German side: ~90 % train, 5 % valid, 5 % test."""
    h = int(hashlib.sha256(german.encode("utf-8")).hexdigest(), 16) % 100
    return "test" if h < 5 else "valid" if h < 10 else "train"


def build_pairs() -> None:
    need(DING, PACKAGE)
    seen, rows = set(), []
    for de, en in ding_pairs(read_dictionary(DING)):
        if (de, en) in seen or "\t" in de + en:
            continue
        seen.add((de, en))
        rows.append(f"{split_of(de)}\t{de}\t{en}")
    out = DATA / "de_en_pairs.tsv"
    out.write_text("split\tde\ten\n" + "\n".join(rows) + "\n", encoding="utf-8")
    print(f"{out}: {len(rows)} pairs")


# --- Spanish-English Bible verses ----------------------------------------
def build_bible() -> None:
    """data/es_en_bible.tsv: verse pairs of the Reina-Valera 1909 and the World English Bible."""
    for module in (bible.SPANISH, bible.ENGLISH):
        need(bible.SWORD / "mods.d" / f"{module}.conf", bible.PACKAGES)
    pairs = list(bible.verse_pairs(bible.verses(bible.SPANISH), bible.verses(bible.ENGLISH)))
    kept = bible.aligned(pairs)
    rows = [f"{split_of(es)}\t{key}\t{es}\t{en}" for key, es, en in kept]
    out = DATA / "es_en_bible.tsv"
    out.write_text("split\tverse\tes\ten\n" + "\n".join(rows) + "\n", encoding="utf-8")
    print(f"{out}: {len(kept)} verse pairs ({len(pairs) - len(kept)} misaligned dropped)")


# --- German-English strings of LibreOffice and Wesnoth ------------------
def _build_strings(name: str, folder: Path, probe: str) -> None:
    need(folder / probe, catalogues.PACKAGES[name])
    pairs = catalogues.string_pairs(folder)
    rows = [f"{split_of(de)}\t{de}\t{en}" for de, en in pairs]
    out = DATA / f"de_en_{name}.tsv"
    out.write_text("split\tde\ten\n" + "\n".join(rows) + "\n", encoding="utf-8")
    print(f"{out}: {len(rows)} string pairs")


def build_libreoffice() -> None:
    """data/de_en_libreoffice.tsv: LibreOffice's German interface strings beside their English originals."""
    _build_strings("libreoffice", catalogues.LIBREOFFICE, "sw.mo")


def build_wesnoth() -> None:
    """data/de_en_wesnoth.tsv: the German dialogue of Wesnoth's sixteen campaigns beside the English."""
    _build_strings("wesnoth", catalogues.WESNOTH, "wesnoth-httt.mo")


# --- Jane Austen ---------------------------------------------------------
def _r_object(blob: bytes):
    """One object of an R lazy-load database: 4-byte length, a compression byte, payload."""
    import rdata  # pip install rdata (in the dev extra)

    kind = blob[4:5]
    if kind == b"2":
        raw = bz2.decompress(blob[5:])
    elif kind == b"X":
        raw = lzma.decompress(blob[5:])
    elif kind == b"Z":
        raw = zlib.decompress(blob[5:])
    else:  # plain zlib stream right after the length
        raw = zlib.decompress(blob[4:])
    assert len(raw) == struct.unpack(">I", blob[:4])[0], "length header disagrees"
    return rdata.conversion.convert(rdata.parser.parse_data(raw))


def build_austen() -> None:
    import rdata

    need(AUSTEN_R / "Rdata.rdb", "r-cran-janeaustenr")
    warnings.simplefilter("ignore")
    index = rdata.conversion.convert(rdata.parser.parse_data(gzip.open(AUSTEN_R / "Rdata.rdx").read()))
    rdb = (AUSTEN_R / "Rdata.rdb").read_bytes()
    (DATA / "austen").mkdir(parents=True, exist_ok=True)
    for name in AUSTEN_NOVELS:
        offset, length = (int(x) for x in index["variables"][name])
        lines = _r_object(rdb[offset : offset + length])
        out = DATA / "austen" / f"{name}.txt"
        out.write_text("\n".join(str(x) for x in lines) + "\n", encoding="utf-8")
        print(f"{out}: {len(lines)} lines")


# --- Fashion-MNIST --------------------------------------------------------
def build_fashion() -> None:
    (DATA / "fashion_mnist").mkdir(parents=True, exist_ok=True)
    for name in FASHION_FILES:
        need(FASHION / name, "dataset-fashion-mnist")
        shutil.copyfile(FASHION / name, DATA / "fashion_mnist" / name)
        print(f"data/fashion_mnist/{name}")


def write_checksums() -> None:
    files = sorted(p for p in DATA.rglob("*") if p.is_file() and p.name not in {"SHA256SUMS", "README.md"})
    lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(DATA).as_posix()}" for p in files]
    (DATA / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


BUILDERS = {
    "pairs": build_pairs,
    "bible": build_bible,
    "libreoffice": build_libreoffice,
    "wesnoth": build_wesnoth,
    "austen": build_austen,
    "fashion": build_fashion,
}

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", nargs="*", help=f"any of {', '.join(BUILDERS)} (default: all)")
    which = parser.parse_args().which or list(BUILDERS)
    unknown = set(which) - set(BUILDERS)
    if unknown:
        parser.error(f"unknown data set(s) {sorted(unknown)}; choose from {list(BUILDERS)}")
    for name in which:
        BUILDERS[name]()
    write_checksums()
