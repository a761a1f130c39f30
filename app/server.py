"""One process, one port: FastAPI with the viser proxy routes, Gradio mounted at ``/``."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import gradio as gr
import uvicorn
from fastapi import FastAPI

from app.callbacks import Studio
from app.files import MAX_UPLOAD_BYTES
from app.guard import StudioGuard
from app.proxy import add_viser_routes
from app.sessions import free_port
from app.ui import CSS, build_ui
from fantasy_world.cli import add_speed_switches

log = logging.getLogger(__name__)

QUEUE_MAX = 20  # Gradio's queue; beyond it requests are refused with Gradio's "queue full" message


def create_app(studio: Studio | None = None) -> tuple[FastAPI, Studio]:
    """The ASGI app and its state; sessions are all closed when the server stops."""
    studio = studio or Studio()
    root = studio.registry.root.resolve()
    if not any(root.is_relative_to(Path(p).resolve()) for p in (tempfile.gettempdir(), os.getcwd())):
        # Results reach the page as Gradio's cache copies, which it only makes from the temp folder or
        # the working directory; serving the session root by path (allowed_paths) is what we avoid.
        raise ValueError(
            f"session root {root}: expected a folder under {tempfile.gettempdir()} or {os.getcwd()}"
        )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        studio.registry.start_sweeper()
        yield
        studio.registry.close_all()  # each session's folder, cached copies and uploads go with it
        studio.janitor.shutdown()

    app = FastAPI(lifespan=lifespan)
    add_viser_routes(app, studio.registry)  # before Gradio's catch-all mount
    demo = build_ui(studio)
    demo.queue(max_size=QUEUE_MAX, default_concurrency_limit=4)
    app = gr.mount_gradio_app(
        app,
        demo,
        path="/",
        css=CSS,
        ssr_mode=False,
        max_file_size=MAX_UPLOAD_BYTES,
        footer_links=["gradio"],
    )
    # Session folders are never served by path (no allowed_paths): handlers' outputs reach the page
    # as Gradio's content-hashed cache copies. mount_gradio_app leaves has_launched False, which
    # turns Gradio's own FileData path check off; on, it refuses event inputs outside its upload
    # folder (and the guard below already refused anything this visitor did not upload).
    demo.has_launched = True
    app.add_middleware(StudioGuard, book=studio.visitors, trust_forwarded=studio.trust_forwarded)
    return app, studio


class BackgroundServer:
    """The studio served from a thread (tests, benchmarks, notebooks); ``stop()`` shuts it down."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port or free_port(host)
        config = uvicorn.Config(app, host=host, port=self.port, log_level="warning", ws_max_size=64 << 20)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="studio-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def start(self, timeout: float = 60.0) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"studio server did not start on {self.url}")
            time.sleep(0.05)
        return self

    def stop(self, timeout: float = 15.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=timeout)


def default_host() -> str:
    """Loopback locally; all interfaces on a Space (where GRADIO_SERVER_NAME or SYSTEM says so)."""
    if os.environ.get("GRADIO_SERVER_NAME"):
        return os.environ["GRADIO_SERVER_NAME"]
    return "0.0.0.0" if os.environ.get("SYSTEM") == "spaces" else "127.0.0.1"


def studio_for_gpus(gpus: int, parser: argparse.ArgumentParser | None = None) -> Studio | None:
    """``None`` (the default studio) for one GPU; N replicas and N queue slots for ``--gpus N``."""
    if gpus == 1:
        return None
    from app.gpu_queue import GpuQueue
    from app.replicas import ReplicaPipelines, replica_devices
    from fantasy_world.errors import InputError

    try:
        devices = replica_devices(gpus)
    except InputError as exc:
        if parser is None:
            raise
        parser.exit(2, f"error: {exc}\n")
    log.info("serving %d visitors at once, one replica on each of %s", gpus, ", ".join(devices))
    return Studio(pipelines=ReplicaPipelines(devices), gpu=GpuQueue(slots=gpus))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="FantasyWorld Studio (Gradio + live viser 3-D view, one port)"
    )
    parser.add_argument("--host", default=default_host())
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", os.environ.get("PORT", 7860)))
    )
    parser.add_argument("--log-level", default="info")
    add_speed_switches(parser)
    parser.add_argument(
        "--gpus", type=int, default=1, help="one model replica per GPU: up to N visitors generate at once"
    )
    args = parser.parse_args(argv)
    from app.gpu_queue import ENV_FP8, ENV_KEEP_ENCODERS, ENV_NO_COMPILE

    if args.no_compile:
        os.environ[ENV_NO_COMPILE] = "1"
    if args.keep_encoders:
        os.environ[ENV_KEEP_ENCODERS] = "1"
    if args.fp8 or args.fp8_attention:
        os.environ[ENV_FP8] = "attention" if args.fp8_attention else "1"
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app, _ = create_app(studio_for_gpus(args.gpus, parser))
    log.info("FantasyWorld Studio on http://%s:%d/", args.host, args.port)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, ws_max_size=64 << 20)
