"""The app's tables (SQLAlchemy 2) and the engine: SQLite (WAL, synchronous=FULL) or PostgreSQL.

Masks are stored as COCO RLE (the truth); polygons are derived on demand. Every change to an
image's annotations is one row in ``ops`` (the history, and server-side undo/redo) and bumps the
image's ``version`` (optimistic locking: a stale version is answered with 409).
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

STATUSES = ("new", "in_progress", "done", "approved", "rejected")
ROLES = ("admin", "annotator", "reviewer")
SOURCES = ("hand", "sam", "everything", "text", "track", "import", "grabcut", "graphcut",
           "model")


def known_source(source: str) -> bool:
    """One of ``SOURCES``, or ``model vN``: a version of a model trained on the project."""
    import re

    return source in SOURCES or re.fullmatch(r"model v[1-9][0-9]{0,8}", source) is not None


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[_dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


class LoginSession(Base):
    __tablename__ = "login_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    csrf: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[_dt.datetime] = mapped_column(DateTime(timezone=True))


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    classes: Mapped[list] = mapped_column(JSON, default=list)  # [{id, name, color}]
    attributes: Mapped[list] = mapped_column(JSON, default=list)  # [{name, type, values}]
    settings: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # {"order": ...}
    created_at: Mapped[_dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


class Image(Base):
    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("project_id", "file_name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"),
                                            index=True)
    file_name: Mapped[str] = mapped_column(String(1000))  # shown and exported
    path: Mapped[str] = mapped_column(Text)  # absolute path on the server
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default="new")
    comment: Mapped[str] = mapped_column(Text, default="")
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"),
                                                    nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[_dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    video: Mapped[str | None] = mapped_column(String(500), nullable=True)  # frames of a video
    frame: Mapped[int | None] = mapped_column(Integer, nullable=True)
    n_annotations: Mapped[int] = mapped_column(Integer, default=0)  # kept by every edit
    n_proposals: Mapped[int] = mapped_column(Integer, default=0)
    # 0 (sure) .. 1: the latest pre-labelling model's doubt about this image (queue order)
    uncertainty: Mapped[float | None] = mapped_column(Float, nullable=True)
    # its place in that queue (descending): the uncertainty made diverse (app/queue.py)
    priority: Mapped[float | None] = mapped_column(Float, nullable=True)


class Annotation(Base):
    __tablename__ = "annotations"
    __table_args__: ClassVar = {"sqlite_autoincrement": True}  # ids never reused (undo)
    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"),
                                          index=True)
    class_id: Mapped[int] = mapped_column(Integer)
    rle: Mapped[str] = mapped_column(Text)  # COCO compressed counts; size is the image's
    area: Mapped[int] = mapped_column(Integer)
    bbox: Mapped[list] = mapped_column(JSON)  # [x, y, w, h]
    source: Mapped[str] = mapped_column(String(20), default="hand")
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    visible: Mapped[bool] = mapped_column(Boolean, default=True)
    z: Mapped[int] = mapped_column(Integer, default=0)  # drawing order, higher on top
    track_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    attributes: Mapped[dict] = mapped_column(JSON, default=dict)
    proposal: Mapped[bool] = mapped_column(Boolean, default=False)  # a model's, unreviewed


class Op(Base):
    """One change of one image's annotations: ``before``/``after`` are annotation snapshots
    (``None`` for create/delete). ``undone`` ops are the redo stack."""

    __tablename__ = "ops"
    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"),
                                          index=True)
    kind: Mapped[str] = mapped_column(String(20))  # create | update | delete | undo | redo
    annotation_id: Mapped[int] = mapped_column(Integer)
    before: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    after: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    undone: Mapped[bool] = mapped_column(Boolean, default=False)
    user: Mapped[str] = mapped_column(String(80), default="local")
    created_at: Mapped[_dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


JOB_KINDS = ("import", "import-coco", "export", "prelabel", "track", "train")
JOB_STATES = ("queued", "running", "done", "failed", "cancelled")


class Job(Base):
    """A piece of background work (import, export, pre-labelling, tracking), claimed by one
    worker at a time (a conditional update: ``queued``, or ``running`` with a stale
    heartbeat, becomes ``running`` for exactly one claimant)."""

    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"),
                                            index=True)
    kind: Mapped[str] = mapped_column(String(20))
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(20), default="queued", index=True)
    done: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int | None] = mapped_column(Integer, nullable=True)
    failed_items: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[list] = mapped_column(JSON, default=list)  # the first ones: one line each
    message: Mapped[str] = mapped_column(Text, default="")
    result: Mapped[dict] = mapped_column(JSON, default=dict)
    cancel: Mapped[bool] = mapped_column(Boolean, default=False)
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_by: Mapped[str] = mapped_column(String(80), default="local")
    created_at: Mapped[_dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    started_at: Mapped[_dt.datetime | None] = mapped_column(DateTime(timezone=True),
                                                             nullable=True)
    finished_at: Mapped[_dt.datetime | None] = mapped_column(DateTime(timezone=True),
                                                              nullable=True)
    heartbeat: Mapped[_dt.datetime | None] = mapped_column(DateTime(timezone=True),
                                                            nullable=True)
    runs: Mapped[int] = mapped_column(Integer, default=0)  # > 1: resumed after a stop
    done_at_start: Mapped[int] = mapped_column(Integer, default=0)  # for the rate


class TrainedModel(Base):
    """A model trained on a project's annotations: one version, its checkpoint folder, the
    registry metadata (task, architecture, classes), its validation metrics and the ids of
    the images it was trained and validated on."""

    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("project_id", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    task: Mapped[str] = mapped_column(String(20))
    arch: Mapped[str] = mapped_column(String(100))
    path: Mapped[str] = mapped_column(Text)
    classes: Mapped[list] = mapped_column(JSON, default=list)
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)
    image_ids: Mapped[dict] = mapped_column(JSON, default=dict)  # {"train": [...], "val": [...]}
    job_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_by: Mapped[str] = mapped_column(String(80), default="local")
    created_at: Mapped[_dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


class JobItem(Base):
    """One unit of an image job (pre-labelling): ``pending`` → ``done`` in the same
    transaction as its results, so a job resumed after a crash never does an item twice."""

    __tablename__ = "job_items"
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"),
                                        primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)  # the order of work
    image_id: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(10), default="pending")  # pending|done|failed


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, synchronous=FULL (a commit is on disk before
    it returns), foreign keys and a busy timeout."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def sqlite_url(path: str | Path) -> str:
    return f"sqlite:///{Path(path).resolve()}"


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (Alembic, scripts shipped in the package)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def sessionmaker_for(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)
