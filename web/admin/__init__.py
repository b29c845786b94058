"""The admin side (``/admin``): sign-in, incidents by hand, maintenance windows, subscribers, API
tokens, and the same writes as JSON under ``/admin/api/`` (``web.admin.api``).

``bp`` is the blueprint ``create_app`` registers; importing this package registers every route on it.
"""

from __future__ import annotations

from web.admin import api, views  # noqa: F401 - the routes register on import
from web.admin.blueprint import bp

__all__ = ["bp"]
