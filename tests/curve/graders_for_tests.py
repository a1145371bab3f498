"""A custom grader that cannot run (its database is gone): `tunesmith curve` must refuse it before training."""


def needs_missing_database(output: str, reference: str | None) -> float:
    raise FileNotFoundError("library.sqlite: no such file")
