"""The cloud's database: SQLAlchemy 2 models, sessions and Alembic migrations."""
