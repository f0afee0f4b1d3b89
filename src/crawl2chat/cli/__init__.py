"""The ``crawl2chat`` command line.

Every command is a thin shell over a library function; heavy imports happen inside
the command that needs them so that ``--help`` stays instant. The subcommands live in
three groups: :mod:`~crawl2chat.cli.pipeline` (run, compose, stage, audit),
:mod:`~crawl2chat.cli.models` (chat, generate, next-token, export, serve) and
:mod:`~crawl2chat.cli.data` (synth, tokenize, extract, langid, pii).
"""

from __future__ import annotations

import argparse

from crawl2chat import runtime
from crawl2chat.cli import data, models, pipeline
from crawl2chat.cli.console import console_log, verbosity_args

DESCRIPTION = """\
crawl2chat: from a raw web crawl to a chat assistant, reproducibly.

  raw crawl (WARC) -> filtered text -> tokens (BPE) -> base model (GPT) -> SFT chat model

Each arrow is a DVC stage run as a Prefect flow, logged to MLflow and checked by a
Great Expectations suite. Typical use:

  crawl2chat run                          # compose conf/ and rebuild what is stale
  crawl2chat run experiment=smoke         # the same with Hydra overrides
  crawl2chat chat models/sft              # talk to the assistant
  crawl2chat audit models/sft             # which data made this model
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crawl2chat", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in (pipeline, models, data):
        group.add_commands(sub)
    verbosity_args(parser, default=0)
    for command in sub.choices.values():
        # after the command too; SUPPRESS keeps a subcommand from resetting the choice
        verbosity_args(command, default=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    runtime.configure()
    from crawl2chat.errors import report_errors

    with console_log(args.verbosity), report_errors():
        return int(args.func(args) or 0)
    return 1

