"""The browser dashboard's files, shipped as package data inside the wheel.

``static/`` is served as it is: ``index.html``, the application's ES modules under ``app/``
and the vendored libraries under ``vendor/`` (written by ``scripts/vendor_frontend.py``, never
edited by hand). Nothing is built or fetched at run time.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable


def static_root() -> Traversable:
    """The folder holding ``index.html`` and every asset the page loads."""
    return files(__name__) / "static"
