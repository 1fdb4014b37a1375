"""Verifying TLS contexts, built once per process.

Loading the CA bundle costs about 0.1 s of CPU, and every run builds HTTP clients (the model's,
the page fetcher's): in a batch that was most of a short run's own CPU. An SSLContext may be
shared between clients, but httpcore sets ALPN on the context it connects with, so clients
that differ in HTTP/2 get different contexts: one per `http2` value (and per SSL_CERT_FILE /
SSL_CERT_DIR, which httpx reads when it builds a context).
"""

from __future__ import annotations

import os
import ssl
from functools import lru_cache

import httpx


def verifying_context(*, http2: bool) -> ssl.SSLContext:
    """httpx's default verifying context, shared by clients that all offer HTTP/2 (`http2`)
    or all do not."""
    return _context(http2, os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


@lru_cache(maxsize=8)
def _context(http2: bool, cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    return httpx.create_ssl_context()


cache_clear = _context.cache_clear
