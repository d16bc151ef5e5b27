"""Paged, filtered image lists for large projects, and proposals.

- images get ``n_annotations`` and ``n_proposals`` (kept by every edit in the same
  transaction) so that "has annotations / proposals" filters read one row, not a join;
- indexes for the list's filters in its order: (project, status, name), (project, assignee,
  name), (project, updated);
- annotations get ``proposal``: a model's suggestion waiting for review (not exported until
  accepted).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    with op.batch_alter_table("images") as b:
        b.add_column(sa.Column("n_annotations", sa.Integer, nullable=False,
                               server_default="0"))
        b.add_column(sa.Column("n_proposals", sa.Integer, nullable=False, server_default="0"))
    with op.batch_alter_table("annotations") as b:
        b.add_column(sa.Column("proposal", sa.Boolean, nullable=False,
                               server_default=sa.false()))
    op.execute("UPDATE images SET n_annotations = (SELECT count(*) FROM annotations "
               "WHERE annotations.image_id = images.id)")
    op.create_index("ix_images_status", "images", ["project_id", "status", "file_name"])
    op.create_index("ix_images_assignee", "images", ["project_id", "assignee_id", "file_name"])
    op.create_index("ix_images_updated", "images", ["project_id", "updated_at"])


def downgrade() -> None:
    op.drop_index("ix_images_updated", "images")
    op.drop_index("ix_images_assignee", "images")
    op.drop_index("ix_images_status", "images")
    with op.batch_alter_table("annotations") as b:
        b.drop_column("proposal")
    with op.batch_alter_table("images") as b:
        b.drop_column("n_proposals")
        b.drop_column("n_annotations")
