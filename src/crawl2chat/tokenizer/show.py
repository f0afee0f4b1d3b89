"""``crawl2chat tokenize``: how a tokenizer cuts a text, for a person to look at.

In: a folder holding ``tokenizer.json`` directly or in ``tokenizer/`` (``data/tokens``,
``models/base`` and ``models/sft`` all qualify) and a text. Out, on stdout: the ids,
then one line per token with its id and its piece (bytes that are not UTF-8 on their
own, such as a part of an emoji, shown as ``\\xNN``), or the same as JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

from crawl2chat.errors import InputError
from crawl2chat.tokenizer.tokenizer import TOKENIZER_FILE, Tokenizer


def find_tokenizer(folder: Path) -> Path:
    """The folder that holds ``tokenizer.json``: ``folder`` or ``folder/tokenizer``."""
    for candidate in (folder, folder / "tokenizer"):
        if (candidate / TOKENIZER_FILE).is_file():
            return candidate
    raise InputError(f"no {TOKENIZER_FILE} in {folder} or {folder / 'tokenizer'}: "
                     f"pass the tokens stage's folder (data/tokens) or a model folder")


def run_tokenize(folder: Path, text: str, as_json: bool = False) -> int:
    tok = Tokenizer.load(find_tokenizer(Path(folder)))
    ids = tok.encode(text)
    pieces = tok.token_pieces(ids)
    if as_json:
        print(json.dumps({"ids": ids, "pieces": pieces, "tokens": len(ids),
                          "bytes": len(text.encode("utf-8", "surrogatepass"))},
                         ensure_ascii=False))
        return 0
    print(f"{len(ids)} tokens for {len(text.encode('utf-8', 'surrogatepass'))} bytes")
    print("ids:", " ".join(map(str, ids)))
    for i, piece in zip(ids, pieces, strict=True):
        print(f"{i:>7}  {piece!r}")
    return 0
