"""The first schema: users, login sessions, projects, images, annotations, ops.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def _tz():
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(80), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("created_at", _tz(), nullable=False))
    op.create_table(
        "login_sessions",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("expires_at", _tz(), nullable=False))
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("classes", sa.JSON, nullable=False),
        sa.Column("attributes", sa.JSON, nullable=False),
        sa.Column("created_at", _tz(), nullable=False))
    op.create_table(
        "images",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("project_id", sa.Integer,
                  sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
        sa.Column("file_name", sa.String(1000), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("assignee_id", sa.Integer, sa.ForeignKey("users.id", ondelete="SET NULL"),
                  nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", _tz(), nullable=False),
        sa.UniqueConstraint("project_id", "file_name"))
    op.create_index("ix_images_project_id", "images", ["project_id"])
    op.create_table(
        "annotations",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("image_id", sa.Integer, sa.ForeignKey("images.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("class_id", sa.Integer, nullable=False),
        sa.Column("rle", sa.Text, nullable=False),
        sa.Column("area", sa.Integer, nullable=False),
        sa.Column("bbox", sa.JSON, nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("visible", sa.Boolean, nullable=False),
        sa.Column("z", sa.Integer, nullable=False),
        sa.Column("track_id", sa.Integer, nullable=True),
        sa.Column("attributes", sa.JSON, nullable=False),
        sqlite_autoincrement=True)
    op.create_index("ix_annotations_image_id", "annotations", ["image_id"])
    op.create_table(
        "ops",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("image_id", sa.Integer, sa.ForeignKey("images.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("annotation_id", sa.Integer, nullable=False),
        sa.Column("before", sa.JSON, nullable=True),
        sa.Column("after", sa.JSON, nullable=True),
        sa.Column("undone", sa.Boolean, nullable=False),
        sa.Column("user", sa.String(80), nullable=False),
        sa.Column("created_at", _tz(), nullable=False))
    op.create_index("ix_ops_image_id", "ops", ["image_id"])


def downgrade() -> None:
    for t in ("ops", "annotations", "images", "projects", "login_sessions", "users"):
        op.drop_table(t)
