"""smallhold: private AI that runs on the user's own machine.

The public surface is small on purpose; everything else lives in modules named for their job.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
