"""Each image's place in the "least confident first" queue: ``priority``, written by the
pre-labelling job (uncertainty made diverse: see ``masklab.app.queue``), with its index.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    with op.batch_alter_table("images") as b:
        b.add_column(sa.Column("priority", sa.Float, nullable=True))
    op.execute("UPDATE images SET priority = uncertainty")
    op.create_index("ix_images_priority", "images", ["project_id", "priority", "id"])


def downgrade() -> None:
    op.drop_index("ix_images_priority", table_name="images")
    with op.batch_alter_table("images") as b:
        b.drop_column("priority")
