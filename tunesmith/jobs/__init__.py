"""Jobs: the store (SQLite/PostgreSQL) and the worker that runs fine-tuning jobs."""
