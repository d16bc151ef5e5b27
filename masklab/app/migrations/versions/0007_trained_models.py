"""Models trained on a project (versions with their metrics and the images they saw), each
image's uncertainty under the latest pre-labelling model (the "least confident first" queue),
and a project's settings (its queue order).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("project_id", sa.Integer,
                  sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("task", sa.String(20), nullable=False),
        sa.Column("arch", sa.String(100), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("classes", sa.JSON, nullable=False),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("image_ids", sa.JSON, nullable=False),
        sa.Column("job_id", sa.Integer, nullable=True),
        sa.Column("created_by", sa.String(80), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("project_id", "version"))
    with op.batch_alter_table("images") as b:
        b.add_column(sa.Column("uncertainty", sa.Float, nullable=True))
    op.create_index("ix_images_uncertainty", "images", ["project_id", "uncertainty", "id"])
    with op.batch_alter_table("projects") as b:
        b.add_column(sa.Column("settings", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("projects") as b:
        b.drop_column("settings")
    op.drop_index("ix_images_uncertainty", table_name="images")
    with op.batch_alter_table("images") as b:
        b.drop_column("uncertainty")
    op.drop_table("models")
