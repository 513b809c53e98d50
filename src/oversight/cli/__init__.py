"""The `oversight` command line: thin commands over the library, one module per side."""

from oversight.cli import measure, monitoring
from oversight.cli.common import app

__all__ = ["app", "measure", "monitoring"]
