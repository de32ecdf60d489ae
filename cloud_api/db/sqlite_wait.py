"""How long a SQLite connection waits for another's lock: one value for the app's engines
(`cloud_api.db.session`) and the migration engine (`cloud_api.db.migrate`)."""

DEFAULT_SQLITE_BUSY_TIMEOUT_S = 30.0
