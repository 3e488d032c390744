"""0.3.2 frontend implementations: the signed ``SessionCookie``."""

from __future__ import annotations

from .cookie import CookieParameters as CookieParameters
from .cookie import SameSiteEnum as SameSiteEnum
from .cookie import SessionCookie as SessionCookie

__all__ = ["CookieParameters", "SameSiteEnum", "SessionCookie"]
