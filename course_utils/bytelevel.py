"""Byte-level BPE, GPT-2 style: a tokenizer for any Unicode text, with no unknown token.

The base alphabet is the 256 byte values, so every string (its UTF-8 bytes) can be
encoded; merges are learned on top of them with the incremental trainer of
`course_utils.bpe_base` (the engine the word-level `course_utils.bpe` uses too). Before training and encoding, text is cut into chunks by GPT-2's
regex (words with their leading space, numbers, punctuation runs, whitespace), and no
merge crosses a chunk boundary: "dog." and "dog!" share the token " dog".

    >>> tok = ByteLevelBPE(special_tokens=["<|endoftext|>"])
    >>> _ = tok.train("the cat sat on the mat. " * 50, vocab_size=265)
    >>> tok.decode(tok.encode("the hat<|endoftext|>")) == "the hat<|endoftext|>"
    True

Concessions:
- Ties between equally frequent pairs follow `tokenizers`' rule (the smaller pair of
  token ids, where `tokenizers` numbers the 256 byte symbols in the order of their
  printable stand-ins, see `bytes_to_unicode`), so both libraries can learn the same
  merges from the same text. `tokenizers` merges a tied pair in only the words its
  heap entry remembers, a quirk we do not copy; the notebook measures the agreement.
- The pre-split needs Unicode classes (\\p{L} letters, \\p{N} numbers) from the `regex`
  module, which `transformers` installs. Without it we fall back to the standard `re`
  module, approximating \\p{L} by `[^\\W\\d_]` and \\p{N} by `\\d`: numbers such as "²" or
  "½" then count as letters. Either way the chunks cover the text, so the round trip holds.
- Pure Python with a chunk cache: fast enough for a few MB, not for a web crawl.

Files: `save("build/tok")` writes `build/tok.json` (what `load` reads) and
`build/tok.vocab`, a human-readable list of every token and the merge that made it.
"""

from __future__ import annotations

import json
import re
import warnings
from itertools import chain
from pathlib import Path
from typing import Iterable

from course_utils.bpe_base import incremental_merges, merge_pair, naive_merges
from course_utils.checks import check_choice, check_int

try:
    import regex as _regex

    HAVE_REGEX = True
except ImportError:  # pragma: no cover - transformers depends on regex
    _regex, HAVE_REGEX = None, False

# GPT-2's pre-tokenizer pattern (also `tokenizers`' ByteLevel pre-tokenizer)
GPT2_SPLIT_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
# the same with the standard library: letters = word characters minus digits and "_"
GPT2_SPLIT_PATTERN_RE = r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+"""
FORMAT = "course_utils.ByteLevelBPE/1"


def compile_split_pattern(use_regex: bool | None = None):
    """The compiled GPT-2 pre-split: with `regex` (exact) when available or asked, else `re` (approximate)."""
    if use_regex is None:
        use_regex = HAVE_REGEX
    if use_regex and not HAVE_REGEX:
        raise ValueError("compile_split_pattern: use_regex=True but the `regex` module is not installed")
    return _regex.compile(GPT2_SPLIT_PATTERN) if use_regex else re.compile(GPT2_SPLIT_PATTERN_RE)


_SPLIT = compile_split_pattern()


def pre_split(text: str, use_regex: bool | None = None) -> list[str]:
    """Cut text into GPT-2 chunks; merges never cross their boundaries.

    >>> pre_split("Hello world's 42 cats!!  ")
    ['Hello', ' world', "'s", ' 42', ' cats', '!!', '  ']
    """
    if not isinstance(text, str):
        raise TypeError(f"pre_split: text must be a str, got {type(text).__name__}")
    pattern = _SPLIT if use_regex is None else compile_split_pattern(use_regex)
    return pattern.findall(text)


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-in for each byte: printable Latin-1 bytes stand for themselves.

    >>> m = bytes_to_unicode(); m[ord("a")], m[ord(" ")], m[ord("\\n")]
    ('a', 'Ġ', 'Ċ')

    The 68 unprintable or whitespace bytes are shifted to code points 256, 257, ...
    `tokenizers` stores its byte-level vocabulary in these characters.
    """
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    mapping, shift = {}, 0
    for b in range(256):
        if b in printable:
            mapping[b] = chr(b)
        else:
            mapping[b] = chr(256 + shift)
            shift += 1
    return mapping


_B2U = bytes_to_unicode()
# tokenizers numbers the byte alphabet by sorted stand-in character: our tie-break rank of byte b
_BYTE_RANK = {b: r for r, b in enumerate(sorted(range(256), key=lambda b: _B2U[b]))}


def _render(token: bytes) -> str:
    r"""A token as readable text: UTF-8 where it decodes, other bytes and control characters escaped.

    >>> print(_render(b"the"), _render("東".encode()[:2]), _render(b"\n"))
    the \xe6\x9d \n
    """
    text = token.decode("utf-8", errors="backslashreplace")
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


class _ChunkCache(dict):
    """{chunk text: token ids}; a missing chunk is encoded once, on first lookup."""

    def __init__(self, encode_chunk):
        super().__init__()
        self.encode_chunk = encode_chunk

    def __missing__(self, chunk: str) -> list[int]:
        ids = self[chunk] = self.encode_chunk(chunk.encode("utf-8"))
        return ids


class ByteLevelBPE:
    """Byte-level BPE tokenizer: ids 0-255 are bytes, then one id per merge, then special tokens.

    special_tokens: strings such as "<pad>" or "<|endoftext|>" that get their own ids
    (after the merges), are never split and never produced from ordinary text merges.
    `vocab_size` in `train` counts everything: 256 bytes + merges + special tokens.
    """

    def __init__(self, special_tokens: Iterable[str] = (), use_regex: bool | None = None):
        specials = list(special_tokens)
        for s in specials:
            if not isinstance(s, str) or not s:
                raise ValueError(f"ByteLevelBPE: special_tokens must be non-empty strings, got {s!r}")
        if len(set(specials)) != len(specials):
            raise ValueError(f"ByteLevelBPE: special_tokens has duplicates: {specials}")
        self.use_regex = HAVE_REGEX if use_regex is None else bool(use_regex)
        self._split = compile_split_pattern(self.use_regex)
        self.merges: dict[tuple[int, int], int] = {}  # (left id, right id) -> new id, in merge order
        self.vocab: dict[int, bytes] = {i: bytes([i]) for i in range(256)}
        self._special_names = specials
        self.special_tokens: dict[str, int] = {}
        self._assign_special_ids()

    # ------------------------------------------------------------------ bookkeeping
    def _assign_special_ids(self) -> None:
        """Number the special tokens after the merges, rebuild their splitter, empty the chunk cache."""
        start = 256 + len(self.merges)
        self.special_tokens = {s: start + k for k, s in enumerate(self._special_names)}
        self.inverse_special = {i: s for s, i in self.special_tokens.items()}
        self._special_re = (
            re.compile("(" + "|".join(re.escape(s) for s in sorted(self.special_tokens, key=len, reverse=True)) + ")")
            if self.special_tokens
            else None
        )
        self._cache = _ChunkCache(self._encode_chunk)

    def __repr__(self) -> str:
        return (
            f"ByteLevelBPE({len(self)} ids = 256 bytes + {len(self.merges)} merges + "
            f"special tokens {list(self.special_tokens)})"
        )

    def __len__(self) -> int:
        return 256 + len(self.merges) + len(self.special_tokens)

    @property
    def vocab_size(self) -> int:
        """Number of ids (embedding rows a model needs): bytes + merges + special tokens."""
        return len(self)

    def token_to_id(self, token: str) -> int:
        """The id of a special token or of a vocabulary entry given as text.

        >>> ByteLevelBPE().token_to_id("a")
        97
        """
        if token in self.special_tokens:
            return self.special_tokens[token]
        raw = token.encode("utf-8")
        for i, b in self.vocab.items():
            if b == raw:
                return i
        raise KeyError(f"token_to_id: {token!r} is not a token of this tokenizer")

    # ------------------------------------------------------------------ training
    def chunk_counts(self, text: str) -> dict[bytes, int]:
        """How often each pre-split chunk occurs, as UTF-8 bytes, in first-occurrence order."""
        counts: dict[bytes, int] = {}
        for part in self._split_specials(text, allowed=True):
            if part in self.special_tokens:
                continue  # special tokens are not training text
            for chunk in self._split.findall(part):
                key = chunk.encode("utf-8")
                counts[key] = counts.get(key, 0) + 1
        return counts

    def train(self, text: str, vocab_size: int, progress: bool = False, naive: bool = False) -> "ByteLevelBPE":
        """Learn merges from `text` until the vocabulary has `vocab_size` ids (fewer if pairs run out).

        naive=True recounts every pair after every merge (the reference the fast trainer is tested against).
        """
        if not isinstance(text, str):
            raise TypeError(f"train: text must be a str, got {type(text).__name__}")
        check_int("train", "vocab_size", vocab_size, low=None)
        minimum = 256 + len(self._special_names)
        if vocab_size < minimum:
            raise ValueError(
                f"train: vocab_size must be >= {minimum} (256 bytes + {len(self._special_names)} "
                f"special tokens), got {vocab_size}"
            )
        counts = self.chunk_counts(text)
        words = [list(chunk) for chunk in counts]  # each chunk as a list of byte ids
        freqs = list(counts.values())
        num_merges = vocab_size - minimum
        next_id = iter(range(256, 256 + num_merges))
        rank = lambda i: _BYTE_RANK[i] if i < 256 else i  # noqa: E731  tokenizers' id order
        if naive:
            pairs = naive_merges(words, freqs, num_merges, new_symbol=lambda a, b: next(next_id), rank=rank)
        else:
            pairs = incremental_merges(
                words,
                freqs,
                num_merges,
                new_symbol=lambda a, b: next(next_id),
                rank=rank,
                progress=progress,
                desc="byte-level BPE merges",
            )
        self.merges, self.vocab = {}, {i: bytes([i]) for i in range(256)}
        for k, (a, b) in enumerate(pairs):
            self.merges[(a, b)] = 256 + k
            self.vocab[256 + k] = self.vocab[a] + self.vocab[b]
        if len(pairs) < num_merges:
            warnings.warn(
                f"train: the text ran out of pairs after {len(pairs)} merges; "
                f"vocabulary has {256 + len(pairs) + len(self._special_names)} ids, not {vocab_size}",
                stacklevel=2,  # point at the caller's train(...) line
            )
        self._assign_special_ids()
        # every merge was applied to every training chunk in order, which is exactly what encoding does:
        # keep the results as a warm cache (encoding the training text is then all lookups)
        self._cache.update((chunk.decode("utf-8"), ids) for chunk, ids in zip(counts, words))
        return self

    def truncated(self, vocab_size: int) -> "ByteLevelBPE":
        """The tokenizer made by the first merges only, with `vocab_size` ids (special tokens included).

        Greedy BPE learns merges in order, so training to 1,024 ids gives exactly the first
        768 merges of a run to 8,192: one training run serves every smaller vocabulary.
        """
        check_int("truncated", "vocab_size", vocab_size, low=256 + len(self._special_names), high=len(self))
        n = vocab_size - 256 - len(self._special_names)
        tok = ByteLevelBPE(special_tokens=self._special_names, use_regex=self.use_regex)
        for k, (pair, new) in enumerate(self.merges.items()):
            if k >= n:
                break
            tok.merges[pair], tok.vocab[new] = new, self.vocab[new]
        tok._assign_special_ids()
        return tok

    # ------------------------------------------------------------------ encoding and decoding
    def _split_specials(self, text: str, allowed: bool) -> list[str]:
        """Cut `text` around special-token strings (kept as parts) when `allowed`; else the whole text."""
        if not allowed or self._special_re is None:
            return [text]
        return [p for p in self._special_re.split(text) if p]

    def _encode_chunk(self, chunk: bytes) -> list[int]:
        """Merge a chunk's bytes: repeatedly apply the earliest-learned merge present.

        [104, 105, 104, 105] with merges {(104, 105): 256} -> [256, 256]
        """
        ids = list(chunk)
        merges = self.merges
        while len(ids) >= 2:
            best, best_id = None, None
            for p in zip(ids, ids[1:]):
                i = merges.get(p)
                if i is not None and (best_id is None or i < best_id):
                    best, best_id = p, i
            if best is None:
                break
            ids = merge_pair(ids, best, best_id)
        return ids

    def encode(self, text: str, allowed_special: str = "all") -> list[int]:
        """Text -> token ids. allowed_special="all": special-token strings in the text become their ids
        (like `tokenizers`); "none": they are encoded as ordinary text.

        Chunks are cached: in prose the same few thousand words repeat, so most chunks are a dict lookup.
        """
        if not isinstance(text, str):
            raise TypeError(f"encode: text must be a str, got {type(text).__name__}")
        check_choice("encode", "allowed_special", allowed_special, ("all", "none"))
        out: list[int] = []
        cache, specials = self._cache, self.special_tokens
        if len(cache) > 200_000:
            cache.clear()
        for part in self._split_specials(text, allowed_special == "all"):
            if allowed_special == "all" and part in specials:
                out.append(specials[part])
                continue
            # one C-level pass: look every chunk up (a miss runs _encode_chunk once), concatenate
            out.extend(chain.from_iterable(map(cache.__getitem__, self._split.findall(part))))
        return out

    def decode(self, ids: Iterable[int]) -> str:
        """Token ids -> text. Bytes that are not valid UTF-8 on their own (a cut sequence) become U+FFFD."""
        parts = []
        for i in ids:
            if i in self.vocab:
                parts.append(self.vocab[i])
            elif i in self.inverse_special:
                parts.append(self.inverse_special[i].encode("utf-8"))
            else:
                raise ValueError(f"decode: id {i!r} is not in the vocabulary (0..{len(self) - 1})")
        return b"".join(parts).decode("utf-8", errors="replace")

    def tokens(self, text: str) -> list[str]:
        """The pieces `encode` produces, as readable strings (for display)."""
        return [self.inverse_special.get(i) or _render(self.vocab[i]) for i in self.encode(text)]

    # ------------------------------------------------------------------ files
    def save(self, prefix: str | Path) -> tuple[Path, Path]:
        """Write `prefix.json` (read by `load`) and `prefix.vocab` (for people); returns both paths."""
        stem = str(prefix).removesuffix(".json")  # "build/tok_v1.5" keeps its dot: suffixes are appended
        json_path, vocab_path = Path(stem + ".json"), Path(stem + ".vocab")
        json_path.parent.mkdir(parents=True, exist_ok=True)
        model = {
            "format": FORMAT,
            "pattern": GPT2_SPLIT_PATTERN if self.use_regex else GPT2_SPLIT_PATTERN_RE,
            "use_regex": self.use_regex,
            "merges": [list(p) for p in self.merges],
            "special_tokens": self.special_tokens,
        }
        json_path.write_text(json.dumps(model, ensure_ascii=False) + "\n", encoding="utf-8")
        parents = {new: pair for pair, new in self.merges.items()}
        lines = [
            f"# {FORMAT}: {len(self)} ids = 256 bytes + {len(self.merges)} merges + "
            f"{len(self.special_tokens)} special tokens. id  [token]  <- [left][right]"
        ]
        for i in range(len(self)):
            if i in self.inverse_special:
                lines.append(f"{i}\t[{self.inverse_special[i]}]\t(special)")
            elif i in parents:
                a, b = parents[i]
                lines.append(
                    f"{i}\t[{_render(self.vocab[i])}]\t<- [{_render(self.vocab[a])}][{_render(self.vocab[b])}]"
                )
            else:
                lines.append(f"{i}\t[{_render(self.vocab[i])}]")
        vocab_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return json_path, vocab_path

    @classmethod
    def load(cls, path: str | Path) -> "ByteLevelBPE":
        """Read a tokenizer written by `save` (give the .json path, or the prefix)."""
        path = Path(str(path) if str(path).endswith(".json") else str(path) + ".json")
        if not path.exists():
            raise FileNotFoundError(f"ByteLevelBPE.load: {path} does not exist (write it with tok.save(prefix))")
        model = json.loads(path.read_text(encoding="utf-8"))
        if model.get("format") != FORMAT:
            raise ValueError(f"ByteLevelBPE.load: {path} has format {model.get('format')!r}, expected {FORMAT!r}")
        specials = sorted(model["special_tokens"], key=model["special_tokens"].get)
        tok = cls(special_tokens=specials, use_regex=model["use_regex"] and HAVE_REGEX)
        for k, (a, b) in enumerate(model["merges"]):
            tok.merges[(a, b)] = 256 + k
            tok.vocab[256 + k] = tok.vocab[a] + tok.vocab[b]
        tok._assign_special_ids()
        if tok.special_tokens != model["special_tokens"]:
            raise ValueError(
                f"ByteLevelBPE.load: {path} is inconsistent: special token ids {model['special_tokens']} "
                f"do not follow the {len(tok.merges)} merges"
            )
        return tok

    @classmethod
    def from_merges(
        cls, merges: Iterable[tuple[str, str]], special_tokens: Iterable[str] = (), use_regex: bool | None = None
    ) -> "ByteLevelBPE":
        """A tokenizer from merges in `tokenizers`' notation, in rank order (the inverse of `merges_as_strings`).

        This is how a pretrained model's merge list (a GGUF file's `tokenizer.ggml.merges`, a
        `merges.txt`) becomes our tokenizer: merge k gets id 256 + k, as if we had learned it.

        >>> ByteLevelBPE.from_merges([("Ġ", "t"), ("h", "e"), ("Ġt", "he")]).tokens(" the")
        [' the']
        """
        tok = cls(special_tokens=special_tokens, use_regex=use_regex)
        ids = {_B2U[b]: b for b in range(256)}  # GPT-2 stand-in string -> our id
        for k, (a, b) in enumerate(merges):
            if a not in ids or b not in ids:
                raise ValueError(
                    f"ByteLevelBPE.from_merges: merge {k} ({a!r}, {b!r}) uses a token no earlier merge made; "
                    "give the merges in rank order, written with GPT-2's byte stand-ins"
                )
            new = 256 + k
            tok.merges[(ids[a], ids[b])] = new
            tok.vocab[new] = tok.vocab[ids[a]] + tok.vocab[ids[b]]
            ids.setdefault(a + b, new)
        tok._assign_special_ids()
        return tok

    # ------------------------------------------------------------------ the reference library
    def merges_as_strings(self) -> list[tuple[str, str]]:
        """Merges in `tokenizers`' notation (bytes written with GPT-2's stand-in characters).

        >>> t = ByteLevelBPE(); t.merges = {(32, 116): 256}; t.vocab[256] = b" t"; t.merges_as_strings()
        [('Ġ', 't')]
        """
        show = lambda b: "".join(_B2U[x] for x in b)  # noqa: E731
        return [(show(self.vocab[a]), show(self.vocab[b])) for a, b in self.merges]

    def to_tokenizers(self):
        """The same tokenizer as a Hugging Face `tokenizers.Tokenizer` (ids included), e.g. to cross-check encode."""
        from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers  # optional: only for this check

        show = lambda b: "".join(_B2U[x] for x in b)  # noqa: E731
        vocab = {show(self.vocab[i]): i for i in range(256 + len(self.merges))}
        hf = Tokenizer(models.BPE(vocab=vocab, merges=self.merges_as_strings()))
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        hf.decoder = decoders.ByteLevel()
        if self.special_tokens:
            hf.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in self._special_names])
        return hf
