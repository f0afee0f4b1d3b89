"""Errors a user can act on, and how the command line reports them (no bare tracebacks)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator


class InputError(ValueError):
    """Bad input data; the message names the file, record or field."""


@contextlib.contextmanager
def report_errors() -> Iterator[None]:
    """Turn expected failures into one readable line on stderr and exit status 2."""
    from crawl2chat.config import ConfigError
    from crawl2chat.quality.suite import GateFailed
    from crawl2chat.stages.runner import StageError

    try:
        yield
    except (InputError, ConfigError, StageError, GateFailed, FileNotFoundError) as err:
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
