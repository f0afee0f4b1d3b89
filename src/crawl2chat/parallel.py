"""Run work units as Prefect tasks on the task runner that the config names.

In: a :class:`RunnerCfg` (``kind``: ``threads``, ``processes`` or ``dask``; ``workers``;
``address`` of a Dask scheduler, or None for a local cluster), a plain function and one
keyword dict per unit. Out: :func:`map_ordered` yields the function's results in unit
order, whatever finished first, so whatever consumes them sees the same sequence for
any runner and worker count.

With a scheduler ``address`` the units run on that Dask cluster's workers: they must
have crawl2chat installed (same version) and see the stage's input and output folders
at the same paths (a shared file system), as the units read and write there.

This module is the library's one adapter to Prefect (imported lazily). Every unit is a
Prefect task run, inside a flow and outside one alike: one code path, so what the tests
run is what the pipeline runs. Outside a flow Prefect records standalone task runs on its
API (the ephemeral one if none is configured, started once per process). Worker
processes (``processes``, ``dask``) are pointed at this process's API; left alone, each
would start an ephemeral server of its own (seconds each, and left running).
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from crawl2chat.errors import ConfigError

KINDS = ("threads", "processes", "dask")


@dataclass
class RunnerCfg:
    """Where units run: ``threads`` or ``processes`` here, ``dask`` here or on a cluster."""

    kind: str = "processes"
    workers: int = 2
    address: str | None = None  # dask: scheduler address, e.g. tls://10.0.0.5:8786
    trust_scheduler: bool = False  # accept a plain-TCP scheduler that is not on loopback

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"text.runner.kind: one of {list(KINDS)}, got {self.kind!r}")
        if self.workers < 1:
            raise ConfigError(f"text.runner.workers: must be >= 1, got {self.workers}")
        if self.address and self.kind != "dask":
            raise ConfigError("text.runner.address: only for kind 'dask'")
        if self.address:
            check_scheduler(self.address, self.trust_scheduler)


TRUST_WARNING = (
    "text.runner.address {address} is a plain-TCP Dask scheduler off this machine, trusted "
    "because text.runner.trust_scheduler is true: results come back as pickles and are "
    "unpickled here, so anyone who can reach or impersonate that scheduler or its workers "
    "can run code in this process. Use tls:// with certificates unless the network is yours.")


def check_scheduler(address: str, trusted: bool) -> None:
    """Refuse a Dask scheduler whose results this process should not unpickle: one off
    this machine, reached without TLS, unless ``trusted`` (then warn, loudly). Results,
    exceptions and task arguments travel as pickles; unpickling runs code."""
    from urllib.parse import urlsplit

    scheme, _, rest = address.partition("://")
    if not rest:
        scheme, rest = "tcp", address  # Dask's default protocol
    if scheme == "tls":
        return
    try:
        host = urlsplit(f"//{rest}").hostname or ""
    except ValueError as err:
        raise ConfigError(f"text.runner.address: cannot read {address!r}: {err}") from err
    if scheme == "inproc" or host in ("localhost", "127.0.0.1", "::1") or host.startswith("127."):
        return
    if not trusted:
        raise ConfigError(
            f"text.runner.address {address!r}: a remote Dask scheduler must be reached over "
            "tls:// (results are unpickled here: a scheduler or worker anyone can reach or "
            "impersonate could run code in this process); or set "
            "text.runner.trust_scheduler: true on a network you control")
    logging.getLogger("crawl2chat").warning(TRUST_WARNING.format(address=address))


def _new_runner(cfg: RunnerCfg) -> Any:
    from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner

    if cfg.kind == "threads":
        return ThreadPoolTaskRunner(max_workers=cfg.workers)
    if cfg.kind == "processes":
        return ProcessPoolTaskRunner(max_workers=cfg.workers)
    from prefect_dask import DaskTaskRunner

    for name in ("distributed", "bokeh", "tornado"):  # a cluster logs every start and stop
        logging.getLogger(name).setLevel(logging.WARNING)
    if cfg.address:
        return DaskTaskRunner(address=cfg.address)
    # one single-threaded process per worker: the steps hold the GIL
    return DaskTaskRunner(cluster_kwargs={"n_workers": cfg.workers, "threads_per_worker": 1,
                                          "processes": True, "dashboard_address": None})


@contextlib.contextmanager
def _shared_api(kind: str) -> Iterator[None]:
    """Make worker processes report to this process's Prefect API (see the module doc)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if kind == "threads" or PREFECT_API_URL.value():
        yield
        return
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:  # starts the ephemeral API if needed
        url = str(client.api_url).rstrip("/")
    with temporary_settings({PREFECT_API_URL: url}):
        yield


@contextlib.contextmanager
def task_runner(cfg: RunnerCfg, warm_up: Callable[[], Any] | None = None) -> Iterator[Any]:
    """A started Prefect task runner for ``cfg``; closed (workers stopped) on exit.

    ``warm_up`` (no arguments) runs once per worker as the runner starts, for worker
    processes only: a process pool starts its workers at the first submit, so without it
    each worker's start (Python, imports, models: seconds) would only begin once the
    caller has planned its first unit; with it, that start overlaps the planning.
    """
    with _shared_api(cfg.kind), _new_runner(cfg) as runner:
        warming = ([runner.submit(as_task(warm_up), {}) for _ in range(cfg.workers)]
                   if warm_up is not None and cfg.kind != "threads" else [])
        yield runner
        for future in warming:  # long done by now; a failure is raised, not lost
            future.result()


def as_task(fn: Callable[..., Any]) -> Any:
    """``fn`` as a Prefect task: never cached or persisted (the stage owns its output)."""
    from prefect import task
    from prefect.cache_policies import NO_CACHE

    return task(fn, name=fn.__name__, cache_policy=NO_CACHE, persist_result=False,
                log_prints=False)


def map_ordered(runner: Any, fn: Callable[..., Any], units: Iterable[dict[str, Any]],
                window: int) -> Iterator[Any]:
    """Run ``fn(**unit)`` for every unit on ``runner``; yield results in unit order.

    At most ``window`` units are in flight (a few per worker keeps every worker busy), so
    a large crawl never holds all results at once. A failed unit raises its error here.
    """
    job = as_task(fn)
    pending: deque[Any] = deque()
    for unit in units:
        pending.append(runner.submit(job, unit))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()
