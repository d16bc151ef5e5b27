"""The app as a server process on loopback (tests, benchmarks, scripts):

    proc, url = start_server("data/", "--backend", "grabcut")
    ...
    stop_server(proc)                       # Ctrl+C, then kill after a grace period
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data: str | Path, *args: str, port: int | None = None,
                 timeout: float = 120.0, quiet: bool = False
                 ) -> tuple[subprocess.Popen, str]:
    """``masklab app --data DATA --port PORT ARGS...`` in a subprocess; returns it and its URL
    once ``/api/info`` answers (``RuntimeError`` with its output if it exits first)."""
    import httpx

    port = port or free_port()
    proc = subprocess.Popen([sys.executable, "-m", "masklab.cli", "app", "--data", str(data),
                             "--port", str(port), *map(str, args)],
                            stdout=subprocess.DEVNULL if quiet else subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout else ""
            raise RuntimeError(f"the app exited with code {proc.returncode}: {out}")
        try:
            if httpx.get(url + "/api/info", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"the app did not answer within {timeout:.0f} s")


def stop_server(proc: subprocess.Popen, grace: float = 20.0) -> None:
    """Ctrl+C (a clean shutdown), then kill if it has not stopped after ``grace`` s."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
