"""0.3.2 import path of ``SessionCookie``, ``CookieParameters``, ``SameSiteEnum``.

The implementation (and the cookie's wire format) is in :mod:`fastapi_sessions._compat.cookie`.
"""

from __future__ import annotations

from ..._compat.cookie import CookieParameters, SameSiteEnum, SessionCookie
from ..._compat.frontend import LegacySessionFrontend as SessionFrontend  # noqa: F401
from ...errors import FrontendError as FrontendError

# SessionFrontend and FrontendError: 0.3.2's module imported them, so code may import them from here.
__all__ = ["CookieParameters", "SameSiteEnum", "SessionCookie"]
