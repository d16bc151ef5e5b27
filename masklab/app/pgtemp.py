"""A throw-away PostgreSQL server on a loopback port (Debian's ``postgresql`` binaries:
initdb + pg_ctl), for tests, benchmarks and trying the app's PostgreSQL path:

    with temporary_postgres() as url:        # postgresql://masklab@127.0.0.1:PORT
        create_app("data/", db_url=url + "/postgres")

As root the server runs as the ``postgres`` user (initdb refuses root).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from masklab.errors import MasklabError


def postgres_bin() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl``, or ``None``."""
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(d, "initdb").is_file():
            return Path(d)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


@contextlib.contextmanager
def temporary_postgres() -> Iterator[str]:
    """Start a fresh cluster (trust auth, user ``masklab``) and stop and delete it after."""
    import pwd

    bindir = postgres_bin()
    if bindir is None:
        raise MasklabError("PostgreSQL server binaries (initdb) are not installed "
                           "(Debian: apt-get install postgresql)")
    root = os.geteuid() == 0
    prefix: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="masklab-pg-"))
    if root:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            raise MasklabError("running as root and there is no postgres user to run the "
                               "server") from None
        os.chown(base, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]

    def run(*cmd):
        return subprocess.run(prefix + [str(c) for c in cmd], check=True, capture_output=True,
                              text=True, timeout=120)

    from masklab.app.process import free_port

    data, port = base / "data", free_port()
    try:
        run(bindir / "initdb", "-D", data, "-U", "masklab", "--auth=trust", "-E", "UTF8")
        run(bindir / "pg_ctl", "-D", data, "-w", "-t", "60", "-l", base / "log", "-o",
            f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={base}"
            " -c max_connections=200", "start")
        try:
            yield f"postgresql://masklab@127.0.0.1:{port}"
        finally:
            run(bindir / "pg_ctl", "-D", data, "-m", "immediate", "stop")
    finally:
        shutil.rmtree(base, ignore_errors=True)
