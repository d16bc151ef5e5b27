"""The app on PostgreSQL: a throw-away cluster (Debian's postgresql, initdb + pg_ctl on a
loopback port) started by the test, then the same API tests as on SQLite."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("psycopg")

from fastapi.testclient import TestClient

from masklab.app import create_app
from tests.app.helpers import Api, make_images
from tests.app.test_api import (  # noqa: F401  (collected here too, on PostgreSQL)
    test_annotations_versions_and_undo_redo,
    test_export_every_format_and_coco_round_trip,
    test_review_flow_and_status,
)
from tests.app.test_server_process import _free_port


def _pg_bin() -> Path | None:
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(d, "initdb").is_file():
            return Path(d)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


@pytest.fixture(scope="module")
def pg_url():
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb) not installed")
    root = os.geteuid() == 0
    if root:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user to run the server")
    base = Path(tempfile.mkdtemp(prefix="masklab-pg-"))
    data = base / "data"
    if root:
        os.chown(base, user.pw_uid, user.pw_gid)

    def run(*cmd):
        cmd = (["runuser", "-u", "postgres", "--"] if root else []) + [str(c) for c in cmd]
        return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120)

    port = _free_port()
    run(bindir / "initdb", "-D", data, "-U", "masklab", "--auth=trust", "-E", "UTF8")
    run(bindir / "pg_ctl", "-D", data, "-w", "-t", "60", "-l", base / "log", "-o",
        f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={base} "
        "-c fsync=on", "start")
    try:
        yield f"postgresql://masklab@127.0.0.1:{port}"
    finally:
        run(bindir / "pg_ctl", "-D", data, "-m", "immediate", "stop")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def app_env(pg_url, tmp_path):
    import psycopg

    name = "t" + tmp_path.name.lower().replace("-", "_")[-40:]
    with psycopg.connect(pg_url + "/postgres", autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    truth = make_images(tmp_path / "data" / "imgs")
    app = create_app(tmp_path / "data", backend="grabcut", db_url=f"{pg_url}/{name}")
    assert app.state.store.engine.dialect.name == "postgresql"
    with TestClient(app) as c:
        yield Api(c), truth, tmp_path
