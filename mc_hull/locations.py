"""Whether a results location is a URI or a local path: the standard library only, so a command that
needs no more (``mc-hull dashboard`` checking DIR before it starts the server) loads no NumPy or Arrow.
:mod:`mc_hull.store` re-exports both functions."""

from __future__ import annotations

import os
from urllib.parse import urlparse


def is_uri(out) -> bool:
    """Whether ``out`` names an object store or other filesystem by URI (``s3://``, ``gs://``, ...), not a
    local path (``file://`` and a Windows drive letter are local): the one test of every module."""
    parsed = urlparse(str(out))
    return bool(parsed.scheme) and len(parsed.scheme) > 1 and parsed.scheme != "file"


def local_path(out) -> str:
    """The absolute local path of a path or ``file://`` URI."""
    parsed = urlparse(str(out))
    return os.path.abspath(parsed.path if parsed.scheme == "file" else str(out))
