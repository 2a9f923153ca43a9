"""The one service database (SQLite by default, PostgreSQL by URL): engines, tables, migrations."""
