"""Commands on single inputs and on SFT data: synth, tokenize, extract, langid, pii."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from crawl2chat.cli.args import positive_int


def _cmd_synth(args: argparse.Namespace) -> int:
    import os

    from crawl2chat.synth.files import passage_seeds, topic_seeds
    from crawl2chat.synth.teacher import SynthCfg, run_synth

    seeds = topic_seeds(Path(args.topics)) if args.topics else passage_seeds(Path(args.passages))
    cfg = SynthCfg(endpoint=args.endpoint, model=args.model, out=Path(args.out), n=args.n,
                   turns=args.turns, rps=args.rps, concurrency=args.concurrency,
                   max_retries=args.max_retries, timeout_s=args.timeout,
                   max_tokens=args.max_tokens, temperature=args.temperature,
                   api_key=args.api_key or os.environ.get("OPENAI_API_KEY"))
    counts = run_synth(cfg, seeds, progress=lambda outcome: print(
        {"written": ".", "duplicate": "d", "failed": "F"}.get(outcome, ""), end="",
        flush=True))
    print(f"\n{args.out}: {counts['written']} written, {counts['already_done']} already "
          f"there, {counts['duplicate']} duplicates, {counts['failed']} failed")
    return 1 if counts["failed"] else 0


def _cmd_tokenize(args: argparse.Namespace) -> int:
    from crawl2chat.tokenizer.show import run_tokenize

    return run_tokenize(Path(args.model), args.text, as_json=args.json)


def _cmd_extract(args: argparse.Namespace) -> int:
    from crawl2chat.text.tools import extract_file

    return extract_file(Path(args.file), sys.stdout)


def _cmd_langid(args: argparse.Namespace) -> int:
    from crawl2chat.text.tools import langid_lines

    return langid_lines(sys.stdin, sys.stdout)


def _cmd_pii(args: argparse.Namespace) -> int:
    from crawl2chat.text.tools import pii_lines

    return pii_lines(sys.stdin, sys.stdout, mode=args.mode, lang=args.lang)


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register this group's subcommands."""
    p = sub.add_parser("synth", help="have a teacher model write conversations (OpenAI API)",
                       description="Ask a teacher model behind an OpenAI-compatible endpoint "
                       "to write conversations about seed topics or passages of crawled text "
                       "(UltraChat-style), appended to OUT as messages-format JSONL with their "
                       "provenance. Rerunning skips the conversations already in OUT. Exit "
                       "status 1 if some could not be written (rerun to retry them).")
    p.add_argument("--endpoint", required=True,
                   help="the API's base URL, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--model", required=True, help="the teacher model's id at the endpoint")
    seeds = p.add_mutually_exclusive_group(required=True)
    seeds.add_argument("--topics", help="a text file, one topic a line")
    seeds.add_argument("--passages", help="the text stage's output (data/text) or a "
                       "Parquet file of documents: one conversation per document passage")
    p.add_argument("--out", required=True, help="the JSONL file to append to")
    p.add_argument("--n", type=positive_int,
                   help="conversations OUT should hold; seeds are reused when N exceeds "
                   "them (default: one per seed)")
    p.add_argument("--turns", type=positive_int, default=2,
                   help="user/assistant exchanges per conversation (default: %(default)s)")
    p.add_argument("--rps", type=float, default=1.0,
                   help="most requests started per second; 0 = no limit (default: %(default)s)")
    p.add_argument("--concurrency", type=positive_int, default=2,
                   help="conversations written at once (default: %(default)s)")
    p.add_argument("--max-retries", type=int, default=5,
                   help="retries of a request after 429, 5xx or a timeout, with exponential "
                   "backoff (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=120.0,
                   help="seconds to wait for one reply (default: %(default)s)")
    p.add_argument("--max-tokens", type=positive_int, default=300,
                   help="most tokens per teacher reply (default: %(default)s)")
    p.add_argument("--temperature", type=float, default=0.8,
                   help="the teacher's sampling temperature (default: %(default)s)")
    p.add_argument("--api-key", help="sent as a Bearer token (default: $OPENAI_API_KEY, if set)")
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("tokenize", help="show the ids and pieces a tokenizer cuts a text into",
                       description="Encode TEXT as ordinary text (special-token text stays "
                       "plain bytes) and print the ids and each token's piece.")
    p.add_argument("text", help="the text to encode")
    p.add_argument("--model", default="data/tokens",
                   help="folder with tokenizer.json or tokenizer/tokenizer.json, e.g. "
                   "data/tokens or models/sft (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    p.set_defaults(func=_cmd_tokenize)

    p = sub.add_parser("extract", help="print the main text of an HTML file",
                       description="Extract the main text the way the text stage does "
                       "(trafilatura, precision mode).")
    p.add_argument("file", help="an HTML file")
    p.set_defaults(func=_cmd_extract)

    p = sub.add_parser("langid", help="language of each stdin line, as JSON lines",
                       description='Print {"lang": .., "score": ..} per input line '
                       "(fastText lid.176).")
    p.set_defaults(func=_cmd_langid)

    p = sub.add_parser("pii", help="redact e-mails, public IPs, phone numbers, person names "
                       "and postal addresses on stdin",
                       description="Write stdin to stdout line for line, PII replaced.")
    p.add_argument("--mode", choices=("placeholder", "fake"), default="placeholder",
                   help="<EMAIL>/<IP>/<PHONE>/<PERSON>/<ADDRESS> placeholders or realistic "
                   "fake values (default: %(default)s)")
    p.add_argument("--lang", default=None,
                   help="language of the input (default: each line's, by fastText); person "
                   "names are looked for in English only, as in the text stage")
    p.set_defaults(func=_cmd_pii)
