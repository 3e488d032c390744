"""Testing tools for backend authors: the conformance kit and test-server resolution.

Importing this module needs pytest and pytest-asyncio (the ``test`` extra).
"""

from __future__ import annotations

from .conformance import BackendConformance, Capability
from .servers import server_url

__all__ = ["BackendConformance", "Capability", "server_url"]
