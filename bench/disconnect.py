"""Next visitor's first-step latency after another visitor drops mid-run, with the real tiny model.

Two visitors load the page (cookie + ``/on_load``) of an in-process studio. B generates once on an
idle GPU/CPU (baseline). A starts a long generation and closes its event stream after step 2, as a
closed tab or a killed script would. B immediately generates again; we report how long B waited
for its first denoising step, and whether A's run was cancelled.

    python bench/disconnect.py [--steps-long 30] [--frames 17 --height 64 --width 96] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def watch(client, session_hash: str, marks: list[str], drop: bool = False) -> list[float]:
    """Times at which each mark first appears in the event stream; ``drop`` closes it at the last."""
    seen: list[float] = []
    with client.stream("GET", "/gradio_api/queue/data", params={"session_hash": session_hash}) as stream:
        for line in stream.iter_lines():
            if len(seen) < len(marks) and marks[len(seen)] in line:
                seen.append(time.monotonic())
                if drop and len(seen) == len(marks):
                    return seen
            if '"process_completed"' in line:
                if len(seen) < len(marks):
                    raise RuntimeError(f"finished before {marks[len(seen)]!r}: {line[:300]}")
                return seen
    raise RuntimeError("event stream ended")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps-long", type=int, default=30)
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--height", type=int, default=64)
    parser.add_argument("--width", type=int, default=96)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import httpx

    from app.callbacks import Studio
    from app.server import BackgroundServer, create_app
    from app.sessions import SessionRegistry

    app, studio = create_app(Studio(SessionRegistry(Path(tempfile.mkdtemp(prefix="fw-drop-")))))
    server = BackgroundServer(app).start()
    fns = {
        d["api_name"]: d["id"] for d in httpx.get(server.url + "config", timeout=60).json()["dependencies"]
    }

    def page() -> httpx.Client:
        client = httpx.Client(base_url=server.url, timeout=600)
        client.get("/")
        return client

    def join(client, name: str, data: list, tab: str) -> None:
        body = {
            "data": data,
            "fn_index": fns[name],
            "session_hash": tab,
            "event_data": None,
            "trigger_id": None,
        }
        client.post("/gradio_api/queue/join", json=body).raise_for_status()

    def gen(steps: int) -> list:
        return [
            "a red ball",
            "",
            None,
            "tiny",
            args.frames,
            args.height,
            args.width,
            steps,
            1.0,
            0,
            0,
            20_000,
            None,  # end image (first/last-frame models only)
        ]

    try:
        a, b = page(), page()
        for client, tab in ((a, "a"), (b, "b")):
            join(client, "on_load", [], tab)
            watch(client, tab, ["fw-viewer"])
        join(b, "generate", gen(2), "b")  # warm-up: loads the model once
        watch(b, "b", ["fw-ok"])
        join(b, "generate", gen(2), "b")
        t0 = time.monotonic()
        marks = watch(b, "b", ["Denoising step 1/2", "Denoising step 2/2", "fw-ok"])
        baseline, step_s = marks[0] - t0, marks[1] - marks[0]
        join(a, "generate", gen(args.steps_long), "a")
        watch(a, "a", [f"Denoising step 2/{args.steps_long}"], drop=True)
        a.close()
        join(b, "generate", gen(2), "b")
        t0 = time.monotonic()
        after = watch(b, "b", ["Denoising step 1/2", "fw-ok"])[0] - t0
    finally:
        server.stop()
        studio.registry.close_all()
    row = {
        "settings": {
            "frames": args.frames,
            "height": args.height,
            "width": args.width,
            "long_steps": args.steps_long,
        },
        "step_s": round(step_s, 2),
        "first_step_idle_s": round(baseline, 2),
        "first_step_after_drop_s": round(after, 2),
        "remaining_steps_if_not_cancelled": args.steps_long - 2,
    }
    print(json.dumps(row, indent=1))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "disconnect.json").write_text(json.dumps(row, indent=1))
    return 0 if after < baseline + 2 * step_s + 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
