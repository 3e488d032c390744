"""Frontends carry the signed session token: a cookie or a header.

``SessionFrontend`` is the default signed-cookie frontend.
"""

from __future__ import annotations

from .base import BaseFrontend, Frontend
from .cookie import CookieFrontend, SessionFrontend
from .header import HeaderFrontend

__all__ = ["BaseFrontend", "CookieFrontend", "Frontend", "HeaderFrontend", "SessionFrontend"]
