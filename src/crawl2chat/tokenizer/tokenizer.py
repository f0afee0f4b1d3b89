"""The byte-level BPE tokenizer every stage after ``tokens`` uses.

In: a folder holding ``tokenizer.json`` (Hugging Face ``tokenizers`` format, written by
:meth:`Tokenizer.save`). Out: token ids for text, text for ids. Encoding runs on
tiktoken's compiled BPE, built from the same ranks the ``tokenizer.json`` spells out,
so the ids equal what ``transformers.PreTrainedTokenizerFast`` gives for that file.

Properties the rest of the pipeline relies on:

- the special tokens of :mod:`crawl2chat.tokenizer.special` have ids 0..7, in order;
- :meth:`Tokenizer.encode` treats its input as ordinary text: a user typing
  ``<|bos|>`` gets ordinary byte tokens, never the control token (control tokens are
  inserted only by id, via :meth:`Tokenizer.special_id`);
- ``decode(encode(text)) == text`` for every Python string. A lone surrogate
  (``"\\ud800"``: not valid Unicode, so it has no UTF-8 form) is encoded by byte
  fallback as the three byte tokens of its ``surrogatepass`` form (ED A0 80), and
  decode turns those bytes back into the surrogate. The exported HF tokenizer cannot
  take such strings at all (its Rust core accepts valid UTF-8 only).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import tiktoken

from crawl2chat.errors import InputError
from crawl2chat.tokenizer import bytelevel, hf_export
from crawl2chat.tokenizer.special import SPECIAL_TOKENS

if TYPE_CHECKING:
    import tokenizers

TOKENIZER_FILE = "tokenizer.json"
_SURROGATE = re.compile("([\ud800-\udfff])")


class Tokenizer:
    """A byte-level BPE tokenizer with crawl2chat's special tokens at ids 0..7.

    ``ranks`` maps every token's bytes to its id (all 256 single bytes included; ids
    0..7 left to the special tokens); a lower id is a higher-priority merge.
    """

    def __init__(self, ranks: Mapping[bytes, int], pattern: str,
                 source: str = "tokenizer") -> None:
        self._special = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
        taken = sorted(i for i in ranks.values() if i < len(SPECIAL_TOKENS))
        if taken:
            raise InputError(f"{source}: ids {taken} belong to the special tokens; "
                             f"retrain it with crawl2chat")
        self._ranks = dict(ranks)
        self.pattern = pattern
        self._enc = tiktoken.Encoding(name="crawl2chat", pat_str=pattern,
                                      mergeable_ranks=self._ranks,
                                      special_tokens=self._special)
        self._byte_ids = [self._ranks[bytes([b])] for b in range(256)]

    @classmethod
    def load(cls, folder: Path) -> Tokenizer:
        file = Path(folder) / TOKENIZER_FILE
        if not file.is_file():
            raise InputError(f"{file} not found: a tokenizer folder holds {TOKENIZER_FILE}")
        ranks, pattern, specials = bytelevel.from_json(file)
        for expected, token in enumerate(SPECIAL_TOKENS):
            if specials.get(token) != expected:
                raise InputError(f"{file}: special token {token} has id "
                                 f"{specials.get(token)}, expected {expected}; "
                                 f"retrain it with crawl2chat")
        return cls(ranks, pattern, source=str(file))

    def save(self, folder: Path) -> None:
        """``tokenizer.json`` + ``tokenizer_config.json`` (loads in transformers)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.to_hf().save(str(folder / TOKENIZER_FILE))
        hf_export.write_config(folder)

    def to_hf(self) -> tokenizers.Tokenizer:
        """The same tokenizer as a Hugging Face ``tokenizers.Tokenizer``."""
        return bytelevel.to_hf(self._ranks, self.pattern, SPECIAL_TOKENS)

    @property
    def ranks(self) -> dict[bytes, int]:
        """Token bytes -> id of every ordinary token (a copy)."""
        return dict(self._ranks)

    @property
    def vocab_size(self) -> int:
        """Number of ids, special tokens included; every id is < vocab_size."""
        return self._enc.n_vocab

    def encode(self, text: str) -> list[int]:
        """Ids of ``text`` as ordinary text (no special tokens are produced)."""
        if not text.isascii():  # O(1): only non-ASCII text can hold a surrogate
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                return self._encode_with_surrogates(text)
        return self._enc.encode_ordinary(text)

    def _encode_with_surrogates(self, text: str) -> list[int]:
        # odd parts are single lone surrogates: their 3 surrogatepass bytes, as byte tokens
        ids: list[int] = []
        for i, part in enumerate(_SURROGATE.split(text)):
            if i % 2:
                ids += [self._byte_ids[b] for b in part.encode("utf-8", "surrogatepass")]
            elif part:
                ids += self._enc.encode_ordinary(part)
        return ids

    def encode_batch(self, texts: list[str], threads: int | None = None) -> list[list[int]]:
        """:meth:`encode` for many texts; ``threads`` (default: all cores) run in parallel.

        tiktoken releases the GIL while it encodes, so plain threads scale.
        """
        threads = threads or os.cpu_count() or 1
        if threads == 1 or len(texts) < 2:
            return [self.encode(t) for t in texts]
        with ThreadPoolExecutor(max_workers=threads) as pool:
            return list(pool.map(self.encode, texts, chunksize=max(1, len(texts) // 64)))

    def decode(self, ids: Sequence[int], skip_special: bool = False) -> str:
        """Text of ``ids``; ids >= vocab_size (a model's padding rows) are dropped.

        Bytes that are not UTF-8 (a model can emit any byte sequence) become U+FFFD,
        except surrogate byte fallback, which gives the surrogate back.
        """
        low = len(SPECIAL_TOKENS) if skip_special else 0
        data = self._enc.decode_bytes([i for i in ids if low <= i < self.vocab_size])
        try:
            return data.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            return data.decode("utf-8", "replace")

    def special_id(self, token: str) -> int:
        """Id of a special token from :mod:`crawl2chat.tokenizer.special`."""
        try:
            return self._special[token]
        except KeyError:
            raise KeyError(f"{token!r} is not a special token; known: "
                           f"{', '.join(SPECIAL_TOKENS)}") from None

    def token_pieces(self, ids: Sequence[int]) -> list[str]:
        """Each id on its own, bytes that are not UTF-8 shown as ``\\xNN``."""
        return [self._enc.decode_single_token_bytes(i).decode("utf-8", "backslashreplace")
                for i in ids]
