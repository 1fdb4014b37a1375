"""TLS contexts are built once per process, one per HTTP/2 setting, and shared by clients."""

from __future__ import annotations

import asyncio
import ssl

import httpx
import pytest

from rumination.llm import tls
from rumination.llm.client import LLMClient
from rumination.reading.fetch import PageFetcher


def test_clients_share_one_context_per_http2_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[ssl.SSLContext] = []
    real = httpx.create_ssl_context

    def counting(*args: object, **kwargs: object) -> ssl.SSLContext:
        context = real()
        built.append(context)
        return context

    monkeypatch.setattr(httpx, "create_ssl_context", counting)
    tls.cache_clear()
    try:

        async def make() -> None:
            for _ in range(3):
                await LLMClient("http://127.0.0.1:1/v1", "m").aclose()
                await PageFetcher().aclose()

        asyncio.run(make())
        assert len(built) <= 2  # one for the model's clients, one for the fetchers'
        assert tls.verifying_context(http2=True) is tls.verifying_context(http2=True)
        assert tls.verifying_context(http2=False) is not tls.verifying_context(http2=True)
        assert tls.verifying_context(http2=False).verify_mode == ssl.CERT_REQUIRED
    finally:
        tls.cache_clear()
