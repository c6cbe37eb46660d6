"""The local run ledger (SQLite) and the rows each writer puts in it."""
