"""Soak: consecutive tiny-model generations through the app's HTTP API, in one app process.

Starts the studio in-process on a loopback port, loads the page once for a visitor cookie, opens a
session (``/on_load``) and drives ``/generate`` with gradio_client (what any API user would do).
After every run it records the process's resident memory, live viser scenes, session/run folders,
and the files and bytes on disk in the session root and Gradio's cache, and checks the result is
complete (status ok, every download present and non-empty). Then the session's time-to-live passes
(the sweep runs as it would) and disk is measured again.

Pass criteria: resident memory after the last run ≤ 1.10 × after run 10 (run 3 when fewer than 10),
no scene or folder growth, every result complete, and disk (session root + Gradio cache) back to its
baseline after the sweep.

    python bench/soak.py [--runs 100] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

log = logging.getLogger("soak")

EXPECTED = {"video.mp4", "depth.mp4", "points.ply", "scene.glb", "cameras.json", "world.npz", "colmap.zip"}
SETTINGS = {"frames": 5, "height": 32, "width": 48, "steps": 2}


def rss_mb() -> float:
    """Resident set size of this process, from /proc (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS in /proc/self/status")


def count_files(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


def disk_bytes(*folders: Path) -> int:
    """Bytes of all regular files under ``folders`` (what the studio and Gradio keep on disk)."""
    return sum(p.stat().st_size for f in folders if f.is_dir() for p in f.rglob("*") if p.is_file())


def complete(result: tuple) -> tuple[bool, str]:
    """Status ok, both players filled, every download present and non-empty."""
    status, video, depth, downloads = result
    if "fw-ok" not in status:
        return False, status
    files = [Path(d if isinstance(d, str) else d["path"]) for d in downloads or []]
    names = {f.name for f in files}
    missing = EXPECTED - names
    if not any(n.startswith("bundle_") for n in names):
        missing.add("bundle_*.zip")
    empty = [f.name for f in files if not f.is_file() or f.stat().st_size == 0]
    for player in (video, depth):
        path = Path(player["video"] if isinstance(player, dict) else player)
        if not path.is_file() or path.stat().st_size == 0:
            empty.append(path.name)
    ok = not missing and not empty
    return ok, "" if ok else f"missing {sorted(missing)} empty {empty}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--ttl", type=float, default=120.0, help="session / Gradio cache time-to-live (s)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)

    work = Path(tempfile.mkdtemp(prefix="fw-soak-"))
    os.environ["GRADIO_TEMP_DIR"] = str(work / "gradio")  # so its cache can be counted exactly
    import httpx
    from gradio_client import Client

    from app.callbacks import Studio
    from app.server import BackgroundServer, create_app
    from app.sessions import SessionRegistry
    from app.visitors import COOKIE

    registry = SessionRegistry(work / "sessions", ttl_s=args.ttl)
    app, studio = create_app(Studio(registry))
    server = BackgroundServer(app).start()
    cache = work / "gradio"
    disk_before = disk_bytes(registry.root, cache)
    cookie = httpx.get(server.url, timeout=60).cookies[COOKIE]  # a page load: the visitor secret
    client = Client(
        server.url,
        verbose=False,
        download_files=str(work / "client"),
        headers={"Cookie": f"{COOKIE}={cookie}"},
    )
    client.predict(api_name="/on_load")  # sessions are opened by a page load only
    rows: list[dict] = []
    failures: list[str] = []
    t_start = time.perf_counter()
    try:
        for i in range(args.runs):
            t0 = time.perf_counter()
            result = client.predict(
                "a red ball beside a tall blue box",
                "",
                None,
                "tiny",
                SETTINGS["frames"],
                SETTINGS["height"],
                SETTINGS["width"],
                SETTINGS["steps"],
                1.0,
                i,
                0,
                20_000,
                None,  # end image (first/last-frame models only)
                api_name="/generate",
            )
            ok, why = complete(result)
            if not ok:
                failures.append(f"run {i + 1}: {why}")
            rows.append(
                {
                    "run": i + 1,
                    "seconds": round(time.perf_counter() - t0, 2),
                    "rss_mb": round(rss_mb(), 1),
                    "sessions": len(registry),
                    "viser_clients_total": sum(
                        len(s.server.get_clients()) for s in list(registry._by_key.values())
                    ),
                    "run_folders": sum(1 for _ in registry.root.glob("session-*/run*")),
                    "session_folders": sum(1 for _ in registry.root.glob("session-*")),
                    "gradio_cache_files": count_files(cache),
                    "disk_mb": round(disk_bytes(registry.root, cache) / 1e6, 2),
                    "complete": ok,
                }
            )
            log.info("run %d: %s", i + 1, rows[-1])
            shutil.rmtree(work / "client", ignore_errors=True)  # the API user's own downloads
        swept_at = time.time() + args.ttl + 1  # what the TTL sweep does once the visitor is gone
        swept = registry.sweep(swept_at)
        after_sweep = {
            "sessions": len(registry),
            "session_folders": sum(1 for _ in registry.root.glob("session-*")),
            "gradio_cache_files": count_files(cache),
            "disk_mb": round(disk_bytes(registry.root, cache) / 1e6, 2),
        }
    finally:
        server.stop()
        registry.close_all()
    rss = [r["rss_mb"] for r in rows]
    base_run = 10 if len(rss) >= 10 else min(3, len(rss))
    base = rss[base_run - 1]
    summary = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}",
        "runs": len(rows),
        "settings": SETTINGS,
        "total_s": round(time.perf_counter() - t_start, 1),
        "median_run_s": sorted(r["seconds"] for r in rows)[len(rows) // 2],
        "rss_mb_after_run_1": rss[0],
        "rss_base_run": base_run,
        "rss_mb_after_base_run": base,
        "rss_mb_after_last": rss[-1],
        "rss_mb_max": max(rss),
        "rss_growth_after_base_run_pct": round(100.0 * (rss[-1] - base) / base, 1),
        "disk_mb_before": round(disk_before / 1e6, 2),
        "disk_mb_max": max(r["disk_mb"] for r in rows),
        "max_sessions": max(r["sessions"] for r in rows),
        "max_run_folders": max(r["run_folders"] for r in rows),
        "max_session_folders": max(r["session_folders"] for r in rows),
        "gradio_cache_files_last": rows[-1]["gradio_cache_files"],
        "gradio_cache_files_max": max(r["gradio_cache_files"] for r in rows),
        "complete_results": sum(r["complete"] for r in rows),
        "ttl_sweep_removed": swept,
        "after_ttl_sweep": after_sweep,
        "failures": failures,
    }
    summary["pass"] = (
        summary["rss_growth_after_base_run_pct"] <= 10.0
        and summary["complete_results"] == len(rows)
        and summary["max_sessions"] == 1
        and summary["max_session_folders"] == 1
        and summary["max_run_folders"] <= 3
        and after_sweep["sessions"] == 0
        and after_sweep["session_folders"] == 0
        and after_sweep["disk_mb"] <= summary["disk_mb_before"] + 0.01
    )
    text = json.dumps({"summary": summary, "runs": rows}, indent=1)
    sys.stdout.write(json.dumps(summary, indent=1) + "\n")
    if args.json:
        args.json.write_text(text)
    return 0 if summary["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
