"""Name search on PostgreSQL: a trigram index on the file name (ILIKE uses it), so that "name
contains" is an index lookup, not a scan of every image (needs the pg_trgm extension,
Debian's postgresql package has it; without the right to create it the search scans).

Revision ID: 0005
Revises: 0004
"""

import logging

from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    try:
        with conn.begin_nested():
            conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS ix_images_name_trgm ON images "
                                 "USING gin (file_name gin_trgm_ops)")
    except Exception as e:  # no right to create the extension: name search scans
        logging.getLogger(__name__).warning("no trigram index for name search (%s)",
                                            str(e).splitlines()[0])


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("DROP INDEX IF EXISTS ix_images_name_trgm")
