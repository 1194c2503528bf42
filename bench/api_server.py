"""A bench-only API server: the real app over a StaticView, one uvicorn worker.

``python -m bench.api_server --config FILE --port N`` serves the config's store (memory or Redis)
on 127.0.0.1. Used by the two-process integration test (bench.bench_api measures `topfib run`
itself); not for production.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from topfib.api.app import create_app
from topfib.controller.config import TopfibConfig, load_config
from topfib.controller.service.static_view import StaticView
from topfib.controller.state.redis_store import RedisStore
from topfib.controller.state.store import MemoryStore, Store


def bench_view(config: TopfibConfig) -> StaticView:
    """Sixteen /20s in 198.18.0.0/16 (the benchmarking range) and one IPv6 /32 per switch."""
    prefixes = {f"198.18.{i * 16}.0/20": "192.0.2.1" for i in range(16)}
    prefixes["2001:db8::/32"] = "2001:db8::1"
    return StaticView(routes={sw.name: dict(prefixes) for sw in config.switch})


def open_store(config: TopfibConfig) -> Store:
    if config.store.url == "memory://":
        return MemoryStore()
    return RedisStore.from_url(config.store.url, replica_acks=config.store.replica_acks)


def build_app(config: TopfibConfig) -> FastAPI:
    store = open_store(config)
    app = create_app(config, store, bench_view(config))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await store.aclose()

    app.router.lifespan_context = lifespan
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = build_app(load_config(args.config))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=args.port, log_level="warning",
                                           access_log=False))
    asyncio.run(server.serve())


if __name__ == "__main__":
    main()
