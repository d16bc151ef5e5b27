"""Video frames: an image may be frame ``frame`` of video ``video`` (its frames are images).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    with op.batch_alter_table("images") as b:
        b.add_column(sa.Column("video", sa.String(500), nullable=True))
        b.add_column(sa.Column("frame", sa.Integer, nullable=True))
    op.create_index("ix_images_video", "images", ["project_id", "video", "frame"])


def downgrade() -> None:
    op.drop_index("ix_images_video", "images")
    with op.batch_alter_table("images") as b:
        b.drop_column("frame")
        b.drop_column("video")
