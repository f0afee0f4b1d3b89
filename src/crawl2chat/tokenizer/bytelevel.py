"""Byte-level BPE in two spellings: tiktoken ranks and a Hugging Face ``tokenizer.json``.

In: mergeable ranks (``{token bytes: id}``, the form ``rustbpe`` trains and tiktoken
encodes with), the pre-tokenisation regex and the special tokens. Out: an equivalent
``tokenizers.Tokenizer`` (vocab + merges in GPT-2's byte-to-unicode alphabet), and
back: the ranks and pattern read from such a ``tokenizer.json``.

Why the two encoders agree: tiktoken merges, inside each regex piece, the adjacent pair
whose concatenation has the lowest rank, and takes a piece that is itself a token
whole. The exported model lists, for every token, the one pair that BPE restricted to
lower ranks produces (the rule transformers uses for tiktoken vocabularies), in rank
order, and sets ``ignore_merges`` so a piece that is a token is taken whole. Ids are
the ranks, so both give the same ids; the tests check it on varied text.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import tokenizers
from tokenizers import AddedToken, decoders, models, pre_tokenizers

from crawl2chat.errors import InputError


@functools.cache
def byte_to_unicode() -> dict[int, str]:
    """GPT-2's map of the 256 bytes to printable characters (the byte-level alphabet)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    chars = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(printable, chars, strict=True)}


@functools.cache
def unicode_to_byte() -> dict[str, int]:
    return {c: b for b, c in byte_to_unicode().items()}


def to_unicode(token: bytes) -> str:
    table = byte_to_unicode()
    return "".join(table[b] for b in token)


def to_bytes(token: str, source: str) -> bytes:
    table = unicode_to_byte()
    try:
        return bytes(table[c] for c in token)
    except KeyError as err:
        raise InputError(f"{source}: token {token!r} is not in the byte-level alphabet") \
            from err


def _bpe(ranks: Mapping[bytes, int], token: bytes, max_rank: int) -> list[bytes]:
    """``token`` cut into parts by BPE using only merges ranked below ``max_rank``."""
    parts = [bytes([b]) for b in token]
    while len(parts) > 1:
        best, best_rank = -1, max_rank
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1])
            if rank is not None and rank < best_rank:
                best, best_rank = i, rank
        if best < 0:
            break
        parts[best:best + 2] = [parts[best] + parts[best + 1]]
    return parts


def merges_from_ranks(ranks: Mapping[bytes, int]) -> list[tuple[bytes, bytes]]:
    """The merge that creates each multi-byte token, in rank order."""
    merges = []
    for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
        if len(token) == 1:
            continue
        parts = _bpe(ranks, token, max_rank=rank)
        if len(parts) != 2:
            raise ValueError(f"token {token!r} (rank {rank}) is not the merge of two "
                             f"lower-ranked tokens: not a BPE vocabulary")
        merges.append((parts[0], parts[1]))
    return merges


def to_hf(ranks: Mapping[bytes, int], pattern: str, specials: Sequence[str]
          ) -> tokenizers.Tokenizer:
    """A ``tokenizers.Tokenizer`` that encodes exactly like tiktoken with ``ranks``.

    ``specials`` get ids 0..n-1; ``ranks`` must already leave those ids free.
    """
    vocab = {token: i for i, token in enumerate(specials)}
    vocab |= {to_unicode(token): rank for token, rank in ranks.items()}
    merges = [(to_unicode(a), to_unicode(b)) for a, b in merges_from_ranks(ranks)]
    hf = tokenizers.Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=True))
    hf.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(tokenizers.Regex(pattern), behavior="isolated"),
        # use_regex=False: the split above replaces GPT-2's pattern
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    hf.decoder = decoders.ByteLevel()
    hf.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    return hf


def from_json(file: Path) -> tuple[dict[bytes, int], str, dict[str, int]]:
    """``(ranks, pattern, special tokens)`` of a byte-level BPE ``tokenizer.json``."""
    try:
        data: dict[str, Any] = json.loads(Path(file).read_text(encoding="utf-8"))
        model = data["model"]
        vocab: dict[str, int] = model["vocab"]
        specials = {t["content"]: int(t["id"]) for t in data.get("added_tokens", [])}
        pre = data["pre_tokenizer"]
        splits = [p for p in pre.get("pretokenizers", [pre]) if p.get("type") == "Split"]
        pattern = splits[0]["pattern"]["Regex"]
    except (OSError, ValueError, KeyError, IndexError, TypeError) as err:
        raise InputError(f"{file}: not a crawl2chat byte-level BPE tokenizer.json "
                         f"({type(err).__name__}: {err})") from err
    if model.get("type") != "BPE":
        raise InputError(f"{file}: model type {model.get('type')!r}, expected BPE")
    ranks = {to_bytes(token, str(file)): i for token, i in vocab.items()
             if token not in specials}
    missing = 256 - sum(1 for token in ranks if len(token) == 1)
    if missing:
        raise InputError(f"{file}: {missing} of the 256 byte tokens are missing; "
                         f"byte-level BPE needs all of them")
    return ranks, pattern, specials
