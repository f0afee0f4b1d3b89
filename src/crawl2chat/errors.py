"""Errors a user can act on, and how the command line reports them (no bare tracebacks).

One family: every expected failure is a :class:`Crawl2chatError`, whose message says
what is wrong and where; :func:`report_errors` turns any of them into one line on stderr.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator


class Crawl2chatError(Exception):
    """An expected failure; the message tells the user what to fix."""


class ConfigError(Crawl2chatError, ValueError):
    """A config value is missing, unknown or of the wrong type."""


class InputError(Crawl2chatError, ValueError):
    """Bad input data; the message names the file, record or field."""


class StageError(Crawl2chatError, RuntimeError):
    """A stage cannot run or its output failed a check; the message says why."""


class GateFailed(Crawl2chatError, RuntimeError):
    """A stage's output broke one or more expectations; the message lists them."""


@contextlib.contextmanager
def report_errors() -> Iterator[None]:
    """Turn expected failures into one readable line on stderr and exit status 2."""
    try:
        yield
    except (Crawl2chatError, FileNotFoundError) as err:
        print(f"crawl2chat: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except subprocess.CalledProcessError as err:
        command = " ".join(str(part) for part in err.cmd)
        print(f"crawl2chat: error: `{command}` failed (exit {err.returncode}); "
              "its message is above", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("crawl2chat: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
