"""A Prefect server on loopback and the process that executes the scheduled pipeline.

    python flows/server.py start [--port 4200] [--run-dir .prefect/server]
    python flows/server.py stop  [--run-dir .prefect/server]

``start`` launches ``prefect server start`` on 127.0.0.1 (its sqlite database in
$PREFECT_HOME), waits until the API answers, then launches ``flows/deploy.py --serve``
against it, which registers the ``conf/deploy`` deployment (cron and timezone) and runs
each scheduled or triggered run; it returns once the deployment is registered. The run
folder holds ``server.pid``, ``serve.pid``, their logs and ``api_url``. ``stop`` ends
both process groups (SIGTERM, then SIGKILL after a grace period). `make server` and
`make server-stop` call these.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from crawl2chat import config, runtime
from crawl2chat.paths import project_root

PROCESSES = ("server", "serve")  # in start order; stopped in reverse


def _wait(ready: object, what: str, log: Path, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while not ready():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not come up within {deadline_s:.0f} s; "
                             f"see {log}:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)


def _api_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


def _deployment_registered(url: str, name: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/deployments/name/pipeline/{name}",
                                    timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


def _launch(name: str, command: list[str], env: dict[str, str], run_dir: Path) -> None:
    log = run_dir / f"{name}.log"
    with log.open("ab") as out:
        # a session of its own: `stop` ends the process and everything it started
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    (run_dir / f"{name}.pid").write_text(f"{process.pid}\n")


def start(port: int, run_dir: Path, log_level: str = "INFO", timeout_s: float = 180) -> str:
    """Start the server and the serving process (its runs logging at ``log_level``);
    return the API URL."""
    root = project_root()
    if any((run_dir / f"{name}.pid").exists() for name in PROCESSES):
        raise SystemExit(f"{run_dir} has pid files: run `make server-stop` first")
    run_dir.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}/api"
    env = dict(os.environ)
    # flow-run logs at INFO reach the UI; the stage processes inherit it through DVC
    env["PREFECT_LOGGING_LEVEL"] = log_level
    # the UI in the browser asks this URL (by default port 4200, whatever --port says)
    env["PREFECT_UI_API_URL"] = url
    _launch("server", [sys.executable, "-m", "prefect", "server", "start",
                       "--host", "127.0.0.1", "--port", str(port)], env, run_dir)
    _wait(lambda: _api_answers(url), f"the Prefect server on {url}",
          run_dir / "server.log", timeout_s)
    env["PREFECT_API_URL"] = url
    _launch("serve", [sys.executable, str(Path(__file__).with_name("deploy.py")), "--serve"],
            env, run_dir)
    name = config.load_params(root).get("deploy", {}).get("name", "crawl2chat-nightly")
    _wait(lambda: _deployment_registered(url, name), f"deployment pipeline/{name}",
          run_dir / "serve.log", timeout_s)
    (run_dir / "api_url").write_text(url + "\n")
    return url


def stop(run_dir: Path, grace_s: float = 20) -> list[int]:
    """End the processes ``start`` recorded in ``run_dir``; return their pids."""
    stopped = []
    for name in reversed(PROCESSES):
        pid_file = run_dir / f"{name}.pid"
        if not pid_file.exists():
            continue
        pid = int(pid_file.read_text())
        _end_group(pid, grace_s)
        pid_file.unlink()
        stopped.append(pid)
    (run_dir / "api_url").unlink(missing_ok=True)
    return stopped


def _end_group(pid: int, grace_s: float) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("--port", type=int, default=4200, help="(default: %(default)s)")
    parser.add_argument("--run-dir", type=Path, default=None,
                        help="pid files and logs (default: $PREFECT_HOME/server)")
    args = parser.parse_args(argv)
    # the user's level, else INFO: read before configure() quiets this process to WARNING
    log_level = os.environ.get("PREFECT_LOGGING_LEVEL", "INFO")
    runtime.configure()
    run_dir = args.run_dir or Path(os.environ["PREFECT_HOME"]) / "server"
    if args.action == "start":
        url = start(args.port, run_dir, log_level)
        print(f"Prefect UI: {url.removesuffix('/api')}  (API {url}); logs in {run_dir}")
    else:
        pids = stop(run_dir)
        print(f"stopped {len(pids)} process(es)" if pids else f"nothing running in {run_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
