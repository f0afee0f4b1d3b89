"""The ``crawl2chat`` logger on the console while a command runs: plain lines on stderr,
whether or not it is a terminal (so DVC, Prefect and CI logs show progress too)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator


class _PlainFormatter(logging.Formatter):
    """Progress as it is (``step 10/200 | loss ...``); warnings and errors say so."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text if record.levelno < logging.WARNING else (
            f"{record.levelname.lower()}: {text}")


@contextlib.contextmanager
def console_log(verbosity: int = 0) -> Iterator[None]:
    """The ``crawl2chat`` logger on stderr at INFO (``verbosity`` 1: DEBUG, -1: WARNING)
    while the block runs; its settings are restored afterwards. It stops propagating
    meanwhile: a root handler (Prefect installs one) would print each line twice."""
    logger = logging.getLogger("crawl2chat")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_PlainFormatter("%(message)s"))
    saved = logger.level, logger.propagate
    logger.setLevel({1: logging.DEBUG, 0: logging.INFO, -1: logging.WARNING}[verbosity])
    logger.propagate = False
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def verbosity_args(p: argparse.ArgumentParser, default: object) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("-v", "--verbose", dest="verbosity", action="store_const", const=1,
                       default=default, help="also print debug lines")
    group.add_argument("-q", "--quiet", dest="verbosity", action="store_const", const=-1,
                       default=default, help="print warnings and errors only")
