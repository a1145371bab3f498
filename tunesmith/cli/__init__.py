"""`tunesmith` command line. Each module registers its commands on the shared app; commands stay thin."""

from tunesmith.cli.app import app
from tunesmith.cli import models  # noqa: F401  (registers commands)
from tunesmith.cli import train  # noqa: F401
from tunesmith.cli import data  # noqa: F401
from tunesmith.cli import evaluate  # noqa: F401
from tunesmith.cli import assess  # noqa: F401
from tunesmith.cli import serve  # noqa: F401
from tunesmith.cli import providers  # noqa: F401
from tunesmith.cli import curve  # noqa: F401

__all__ = ["app"]
