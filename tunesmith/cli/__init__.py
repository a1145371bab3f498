"""`tunesmith` command line. Each module registers its commands on the shared app; commands stay thin."""

from tunesmith.cli.app import app
from tunesmith.cli import models  # noqa: F401  (registers commands)

__all__ = ["app"]
