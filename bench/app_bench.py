"""Studio viewer benchmark in headless Chromium: time to first cloud, playback rate, bytes per frame.

Runs the real app in-process on a loopback port, opens it in Debian Chromium (software WebGL), and
measures (1) end of a tiny-model generation → point clouds sent, → first cloud drawn in the browser
and → every frame drawn (render round trips through the client), (2) playback of 33 frames × 50k points in "current frame" mode: the
server's frame-advance rate and the browser's requestAnimationFrame rate while playing, (3) bytes the
viewer's WebSocket carried per frame (first send) and per playback step (visibility toggles only).

    python bench/app_bench.py [--json out.json] [--skip-model]
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.callbacks import Studio  # noqa: E402
from app.headless import CHROMIUM_ARGS, chromium_path  # noqa: E402
from app.scene_data import ViewOptions  # noqa: E402
from app.server import BackgroundServer, create_app  # noqa: E402
from app.viewer import MODES  # noqa: E402
from bench.harness.synthetic_world import synthetic_world  # noqa: E402

log = logging.getLogger("app_bench")

RAF_PROBE = """(ms) => new Promise((done) => {
  let n = 0; const t0 = performance.now();
  const tick = (t) => { n += 1; if (t - t0 < ms) requestAnimationFrame(tick); else done(n * 1000 / (t - t0)); };
  requestAnimationFrame(tick);
})"""


def open_viewer(browser, url: str, studio: Studio):
    """A page with the studio loaded and its viser client connected; returns (page, session, client)."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    before = set(studio.registry._by_key)
    page.goto(url, timeout=120_000)
    page.frame_locator("#fw-viewer").locator("canvas").first.wait_for(timeout=120_000)
    deadline = time.monotonic() + 60
    while True:
        new = [k for k in studio.registry._by_key if k not in before]
        session = studio.registry.get(new[0]) if new else None
        if session is not None and session.server.get_clients():
            break
        if time.monotonic() > deadline:
            raise RuntimeError("viewer did not connect")
        time.sleep(0.1)
    client = next(iter(session.server.get_clients().values()))
    return page, session, client


def render(client) -> np.ndarray:
    """The client's current view, rendered in the browser (a full round trip through the viewer)."""
    return client.get_render(height=240, width=320, transport_format="png")[..., :3].astype(int)


def changed(a: np.ndarray, b: np.ndarray) -> int:
    return int((np.abs(a - b).max(axis=-1) > 30).sum())


def bench_first_cloud(session, client, skip_model: bool) -> dict:
    """End of generation (tiny model, default size, 2 steps) → cloud sent, and → drawn in the browser."""
    if skip_model:
        world, source = synthetic_world(num_frames=17, height=128, width=192), "synthetic 17x128x192"
    else:
        from fantasy_world.pipeline import FantasyWorldPipeline

        pipe = FantasyWorldPipeline.from_pretrained("tiny")
        t = time.perf_counter()
        world = pipe("a red ball beside a tall blue box", camera=session.editor.path.copy(), steps=2)
        source = f"tiny model, {world.num_frames}x{world.height}x{world.width}, 2 steps ({time.perf_counter() - t:.1f} s)"
    session.viewer.options = ViewOptions(conf_percentile=10.0, max_points=200_000)
    session.viewer.clear()
    time.sleep(1.0)
    t = time.perf_counter()
    empty = render(client)
    render_round_trip_s = time.perf_counter() - t
    # The viewer sends the first frame (and the framing) as its own batch, then the rest: a render
    # requested between the two is answered once the browser drew the first cloud.
    viewer, first = session.viewer, {}
    send = viewer._send_frames

    def probe(payloads) -> None:  # noqa: ANN001
        if payloads and not first and viewer._frames:
            first["sent"] = time.perf_counter() - t0
            first["img"] = render(client)
            first["s"] = time.perf_counter() - t0
        send(payloads)

    viewer._send_frames = probe
    t0 = time.perf_counter()
    sent_s = viewer.show_world(world)
    drawn = render(client)
    drawn_s = time.perf_counter() - t0
    viewer._send_frames = send
    return {
        "world": source,
        "points": int(sum(len(p.points) for p in session.viewer.payloads)),
        "end_to_sent_s": round(sent_s, 3),
        "end_to_first_batch_sent_s": round(first.get("sent", float("nan")), 3),
        "end_to_first_cloud_drawn_s": round(first.get("s", float("nan")), 3),
        "pixels_changed_by_first_cloud": changed(empty, first["img"]) if "img" in first else 0,
        "end_to_drawn_s": round(drawn_s, 3),
        "empty_render_round_trip_s": round(render_round_trip_s, 3),
        "pixels_changed_by_world": changed(empty, drawn),
    }


def bench_playback(page, session, seconds: float = 5.0) -> dict:
    """33 frames × 50k points: bytes per frame on first send, then playback in current-frame mode."""
    world = synthetic_world(num_frames=33, height=192, width=288)
    viewer = session.viewer
    viewer.options = ViewOptions(conf_percentile=0.0, max_points=33 * 50_000)
    viewer.clear()
    time.sleep(1.0)
    b0 = session.bytes_to_browser
    viewer.show_world(world)
    time.sleep(3.0)  # let the WebSocket drain
    first_send = session.bytes_to_browser - b0
    points = [len(p.points) for p in viewer.payloads]
    viewer.set_mode(MODES[1])
    viewer.gui_fps.value = 30
    viewer.playback.fps = 30.0
    frame = page.frame_locator("#fw-viewer").locator("canvas").first
    idle_fps = frame.evaluate(f"(c) => ({RAF_PROBE})({seconds * 1000 / 2})")
    b1, f1, t1 = session.bytes_to_browser, 0, time.perf_counter()
    advanced = [0]
    original = viewer._on_play_frame

    def counting(i: int) -> None:
        advanced[0] += 1
        original(i)

    viewer.playback._on_frame = counting
    viewer.playback.play(True)
    play_fps = frame.evaluate(f"(c) => ({RAF_PROBE})({seconds * 1000})")
    viewer.playback.play(False)
    elapsed = time.perf_counter() - t1
    steps = advanced[0] - f1
    return {
        "frames": world.num_frames,
        "points_per_frame": int(np.median(points)),
        "first_send_bytes_per_frame": int(first_send / world.num_frames),
        "payload_bytes_per_frame": int(np.median([p.nbytes for p in viewer.payloads])),
        "playback_target_fps": 30,
        "server_advance_fps": round(steps / elapsed, 1),
        "browser_raf_fps_idle": round(float(idle_fps), 1),
        "browser_raf_fps_playing": round(float(play_fps), 1),
        "bytes_per_playback_step": int((session.bytes_to_browser - b1) / max(1, steps)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--skip-model", action="store_true", help="use a synthetic world of the tiny size")
    parser.add_argument(
        "--chromium", default=chromium_path(), help="default: CHROMIUM_PATH or Debian's chromium"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from playwright.sync_api import sync_playwright

    app, studio = create_app()
    server = BackgroundServer(app).start()
    results: dict = {
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, python {platform.python_version()}"
    }
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
            page, session, client = open_viewer(browser, server.url, studio)
            results["first_cloud"] = bench_first_cloud(session, client, args.skip_model)
            results["playback"] = bench_playback(page, session)
            browser.close()
    finally:
        server.stop()
        studio.registry.close_all()
    text = json.dumps(results, indent=2)
    sys.stdout.write(text + "\n")
    if args.json:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
