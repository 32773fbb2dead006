"""Directus v8 → v9+ migration: the pieces that read the v8 side.

- ``query``: rewrites a v8 API URL or query string into its v9+ form, with notes on what changed and
  warnings for what has no v9 form.
- ``source``: detects and reads a v8 MySQL/MariaDB database into typed models (collections, fields,
  relations, roles, users, folders, files, permissions) and checks the v8 upload folder.

Facts behind both: ``docs/v8-migration.md`` (and the shared v8 → v9 notes it cites).
"""
