"""German translations of English programs, string by string: where data/de_en_libreoffice.tsv and de_en_wesnoth.tsv come from.

Course tooling, not a lesson: `scripts/build_data.py` reads the gettext catalogues (.mo
files) of two Debian packages, LibreOffice's German interface (`libreoffice-l10n-de`,
MPL-2.0) and the dialogue of the Battle for Wesnoth campaigns (`wesnoth-1.16-*`, GPL-2.0).
In a catalogue the English original is the key and the German translation its value;
`clean` removes what is there for the program and not for a reader (menu accelerators,
Wesnoth's "context^" prefixes, markup), and `usable` keeps the strings that read as text.

>>> clean("Re_place ~All"), clean("recruit^Walking <i>Corpse</i>")
('Replace All', 'Walking Corpse')
>>> usable("Returns TRUE if value refers to an empty cell."), usable("%1 of %2"), usable("Reports")
(True, False, False)
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from pathlib import Path

__all__ = ["LIBREOFFICE", "WESNOTH", "PACKAGES", "read_mo", "clean", "usable", "string_pairs"]

LIBREOFFICE = Path("/usr/lib/libreoffice/program/resource/de/LC_MESSAGES")
WESNOTH = Path("/usr/share/games/wesnoth/1.16/locale/de/LC_MESSAGES")
CAMPAIGNS = "did dm dw ei httt l low nr sof sota sotbe thot trow tsg ttb utbs"  # Wesnoth 1.16's official campaigns
PACKAGES = {
    "libreoffice": "libreoffice-l10n-de",
    "wesnoth": " ".join(f"wesnoth-1.16-{c}" for c in CAMPAIGNS.split()),
}

_MNEMONIC = re.compile(r"_(?=\w)")  # GTK's "_File": the underscore marks the shortcut letter
_CONTEXT = re.compile(r"^[a-z_]{2,}\^(?=\S)")  # Wesnoth's "recruit^Walking Corpse": a context for translators
_TAG = re.compile(r"</?(?:i|b|u|span|small|big)\b[^>]*>")  # Pango markup around words
_PROGRAM = re.compile(r"[%$<>{}\[\]\\|#@=\n\t]|\.\.\.|…")  # placeholders, markup, code, "More..."


def read_mo(path: Path) -> Iterator[tuple[str, str]]:
    """(original, translation) for every entry of a GNU gettext .mo file (little- or big-endian).

    A context ("ctx\\x04msgid") is dropped from the original; of a plural entry
    ("one\\x00many") only the singular forms are kept.
    """
    blob = Path(path).read_bytes()
    magic = struct.unpack("<I", blob[:4])[0]
    if magic not in (0x950412DE, 0xDE120495):
        raise ValueError(f"read_mo: {path} is not a gettext .mo file (magic {magic:#x})")
    order = "<" if magic == 0x950412DE else ">"
    n, originals, translations = struct.unpack(order + "3I", blob[8:20])
    for i in range(n):
        olen, ooff = struct.unpack(order + "2I", blob[originals + 8 * i : originals + 8 * i + 8])
        tlen, toff = struct.unpack(order + "2I", blob[translations + 8 * i : translations + 8 * i + 8])
        original = blob[ooff : ooff + olen].decode("utf-8").split("\x04")[-1].split("\x00")[0]
        translation = blob[toff : toff + tlen].decode("utf-8").split("\x00")[0]
        if original:  # the empty original is the catalogue's header
            yield original, translation


def clean(s: str) -> str:
    """A string as a reader sees it: accelerators, context prefix and markup removed, spaces tidied."""
    s = _TAG.sub("", _CONTEXT.sub("", s.replace("~", "")))
    return re.sub(r"\s+", " ", _MNEMONIC.sub("", s)).strip()


def usable(s: str) -> bool:
    """Text, not program: two words or more and no placeholder, markup or code character."""
    return len(s.split()) >= 2 and not _PROGRAM.search(s)


def string_pairs(folder: Path) -> list[tuple[str, str]]:
    """(german, english) for every usable string of every catalogue in `folder`, the first translation of each original.

    Catalogues are read in name order, so the same packages give the same pairs; an
    original whose translation is empty or identical (a name, a unit) is skipped.
    """
    seen: dict[str, str] = {}
    for mo in sorted(Path(folder).glob("*.mo")):
        for original, translation in read_mo(mo):
            en, de = clean(original), clean(translation)
            if en not in seen and de and de != en and usable(en) and usable(de):
                seen[en] = de
    return [(de, en) for en, de in seen.items()]
