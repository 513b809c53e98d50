"""The `oversight` command line: thin commands over the library, one module per side."""

from oversight.cli import (
    interp_capture,
    interp_circuits,
    interp_features,
    interp_probes,
    measure,
    monitoring,
    web,
)
from oversight.cli.common import app

__all__ = ["app", "interp_capture", "interp_circuits", "interp_features", "interp_probes", "measure", "monitoring", "web"]
