"""Train a byte-level BPE tokenizer with a compiled trainer.

In: an iterable of texts and a vocabulary size. Out: a :class:`Tokenizer` whose first
ids are the special tokens, then the 256 byte tokens, then the learned merges in the
order they were learned.

Pre-tokenisation follows GPT-4 (cl100k): the text is cut into words, runs of up to
three digits, punctuation runs and whitespace before any bytes are merged, so a
merge never spans a word and a space-prefixed word is one token. The split keeps
every character, and the byte-level alphabet covers every byte, so decoding gives
back the exact input. The pattern avoids ``$`` (end of text for tiktoken's regex
engine, end of line for the Oniguruma engine of ``tokenizers``) so both engines cut
text the same way.

Two trainers, both Rust, both deterministic (same texts and settings, same
``tokenizer.json``): ``rustbpe`` (the default: it merges any pair that occurs, and it
is the faster one, see benchmarks/bench_tokenizer.py), and the ``tokenizers``
BpeTrainer when ``min_frequency`` > 1 asks to leave rare pairs unmerged, which needs
pair counts that rustbpe does not expose.
"""

from __future__ import annotations

from collections.abc import Iterable

import rustbpe
import tokenizers
from tokenizers import models, pre_tokenizers, trainers

from crawl2chat.tokenizer import bytelevel
from crawl2chat.tokenizer.special import SPECIAL_TOKENS
from crawl2chat.tokenizer.tokenizer import Tokenizer

SPLIT_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}|"""
    r""" ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""
)
N_SPECIAL = len(SPECIAL_TOKENS)
# special tokens + one token per byte: a smaller vocabulary could not learn any merge
MIN_VOCAB_SIZE = N_SPECIAL + 256


def train_bpe(texts: Iterable[str], vocab_size: int, min_frequency: int = 1,
              show_progress: bool = False) -> Tokenizer:
    """Learn merges from ``texts`` until ``vocab_size`` ids exist (or no pair repeats).

    The result can be smaller than ``vocab_size`` when the texts are too few to
    support that many merges; ``Tokenizer.vocab_size`` gives the real size.
    """
    if vocab_size < MIN_VOCAB_SIZE:
        raise ValueError(f"vocab_size {vocab_size} is below the minimum {MIN_VOCAB_SIZE} "
                         f"({N_SPECIAL} special tokens + 256 bytes)")
    if min_frequency > 1:
        ranks = _train_hf(texts, vocab_size, min_frequency, show_progress)
    else:
        ranks = train_rustbpe(texts, vocab_size)
    return Tokenizer(ranks, SPLIT_PATTERN, source="trained tokenizer")


def train_rustbpe(texts: Iterable[str], vocab_size: int) -> dict[bytes, int]:
    """Ranks learned by rustbpe, shifted past the special tokens' ids."""
    trainer = rustbpe.Tokenizer()
    # rustbpe's vocabulary is 256 bytes + merges; ours adds the special tokens
    trainer.train_from_iterator(iter(texts), vocab_size - N_SPECIAL, pattern=SPLIT_PATTERN)
    return {token: rank + N_SPECIAL for token, rank in trainer.get_mergeable_ranks()}


def hf_trainer(vocab_size: int, min_frequency: int, show_progress: bool = False
               ) -> tuple[tokenizers.Tokenizer, trainers.BpeTrainer]:
    """An untrained ``tokenizers`` BPE with our pre-tokenizer, and its BpeTrainer."""
    hf = tokenizers.Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(tokenizers.Regex(SPLIT_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, show_progress=show_progress,
        special_tokens=list(SPECIAL_TOKENS),  # first, so they get ids 0..7
        # every byte is a token even if the training texts never contain it
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    return hf, trainer


def _train_hf(texts: Iterable[str], vocab_size: int, min_frequency: int,
              show_progress: bool) -> dict[bytes, int]:
    hf, trainer = hf_trainer(vocab_size, min_frequency, show_progress)
    hf.train_from_iterator(texts, trainer=trainer)
    # BpeTrainer numbers merged tokens in the order it learned them, after the bytes:
    # the ids are already merge ranks
    return {bytelevel.to_bytes(token, "BpeTrainer"): i
            for token, i in hf.get_vocab(with_added_tokens=False).items()
            if i >= N_SPECIAL}
