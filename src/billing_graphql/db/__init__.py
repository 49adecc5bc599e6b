"""Database: engine and sessions, models, migrations."""
