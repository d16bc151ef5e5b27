"""Alembic environment: the connection comes from ``masklab.app.db.migrate``."""

from alembic import context

from masklab.app.db import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
