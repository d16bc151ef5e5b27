"""masklab's annotation web app: a FastAPI server over a SQLAlchemy store (SQLite by default,
PostgreSQL for teams), a static front end, SAM prompts with cached embeddings, review and
export with masklab's writers. ``masklab app`` starts it; ``masklab.app.client`` drives it."""

from masklab.app.server import AppConfig, create_app

__all__ = ["AppConfig", "create_app"]
