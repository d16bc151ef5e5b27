"""The app on PostgreSQL: a throw-away cluster (Debian's postgresql, initdb + pg_ctl on a
loopback port) started by the test, then the same API tests as on SQLite."""

from __future__ import annotations

import os
import pwd

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("psycopg")

from fastapi.testclient import TestClient

from masklab.app import create_app
from tests.app.helpers import Api, make_images
from tests.app.test_api import (  # noqa: F401  (collected here too, on PostgreSQL)
    test_annotations_versions_and_undo_redo,
    test_export_every_format_and_coco_round_trip,
    test_image_list_paged_filtered_sorted,
    test_review_flow_and_status,
)
from tests.app.test_jobs import (  # noqa: F401
    test_import_job_skips_a_corrupt_image_and_export_job_downloads,
    test_prelabel_text_pipeline_proposals_review_and_export,
)


@pytest.fixture(scope="module")
def pg_url():
    from masklab.app.pgtemp import postgres_bin, temporary_postgres

    if postgres_bin() is None:
        pytest.skip("PostgreSQL server binaries (initdb) not installed")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user to run the server")
    with temporary_postgres() as url:
        yield url


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


def test_two_app_processes_share_the_jobs_table(pg_url, tmp_path):
    """Two app processes on one PostgreSQL database (their job runners): each job is claimed
    by one worker and runs once."""
    import psycopg

    from tests.app.test_jobs import check_claims

    with psycopg.connect(pg_url + "/postgres", autocommit=True) as con:
        con.execute('CREATE DATABASE "claims"')
    make_images(tmp_path / "a" / "imgs")
    apps = [create_app(tmp_path / name, backend="grabcut", job_threads=0,
                       db_url=f"{pg_url}/claims", roots=[tmp_path / "a"])
            for name in ("a", "b")]
    check_claims([a.state.store for a in apps])
    for a in apps:
        a.state.store.engine.dispose()
