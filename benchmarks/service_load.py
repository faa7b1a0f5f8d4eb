"""Load test of `ddro serve` on loopback, with and without micro-batching.

    python benchmarks/service_load.py --model runs/cranfield/model-ddro --collection ../shared/data/cranfield \\
        --requests 1000 --concurrency 1,8,32 --json > benchmarks/results/service-load-cpu-2core.json

For each mode, `batched` (the default window and batch) and `one-at-a-time` (`--batch-window-ms 0
--max-batch 1`), the script starts the service in a second process on a free loopback port, sends
`--requests` searches (the collection's queries in turn, `GET /v1/search`) at each concurrency,
then `--malformed` malformed requests of several kinds, reads `/metrics`, and stops the service
with SIGTERM. Output: per mode and concurrency, p50/p95/p99 latency, queries per second and the
status counts; per mode, how the malformed requests were answered and the mean batch size the
service searched.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time

MODES = {"batched": [], "one-at-a-time": ["--batch-window-ms", "0", "--max-batch", "1"]}
# (method, path, keyword arguments): each must be answered 4xx.
MALFORMED = [
    ("GET", "/v1/search", {"params": {}}),
    ("GET", "/v1/search", {"params": {"query": "x", "hits": 0}}),
    ("GET", "/v1/search", {"params": {"query": "x", "hits": "many"}}),
    ("GET", "/v1/search", {"params": {"query": "x" * 5000}}),
    ("POST", "/v1/search", {"content": b"{not json", "headers": {"content-type": "application/json"}}),
    ("POST", "/v1/search", {"json": {"queries": [{"qid": "1"}]}}),
    ("GET", "/v1/doc/no-such-document", {}),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(args, extra: list[str]) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "ddro.cli", "serve", "--model", args.model, "--collection",
                                args.collection, "--port", str(port), "--beams", str(args.beams), *extra],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"service_load: the service did not start: {process.stderr.read()[-2000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    sys.exit("service_load: the service did not answer /healthz within 300 s")


async def drive(url: str, texts: list[str], requests: int, concurrency: int, hits: int) -> dict:
    import httpx

    latencies, statuses = [], {}
    counter = iter(range(requests))

    async def worker(client):
        for i in counter:
            start = time.perf_counter()
            try:
                answer = await client.get("/v1/search", params={"query": texts[i % len(texts)], "hits": hits})
                status = answer.status_code
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            latencies.append(time.perf_counter() - start)
            statuses[str(status)] = statuses.get(str(status), 0) + 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        seconds = time.perf_counter() - start
    cuts = statistics.quantiles(latencies, n=100)
    return {"concurrency": concurrency, "requests": requests, "seconds": round(seconds, 2),
            "queries_per_second": round(requests / seconds, 2), "p50_ms": round(cuts[49] * 1000, 1),
            "p95_ms": round(cuts[94] * 1000, 1), "p99_ms": round(cuts[98] * 1000, 1), "statuses": statuses}


def malformed(url: str, count: int) -> dict:
    import httpx

    statuses: dict[str, int] = {}
    with httpx.Client(base_url=url, timeout=60) as client:
        for i in range(count):
            method, path, kwargs = MALFORMED[i % len(MALFORMED)]
            status = str(client.request(method, path, **kwargs).status_code)
            statuses[status] = statuses.get(status, 0) + 1
    return {"requests": count, "statuses": statuses,
            "all_4xx": all(s.startswith("4") for s in statuses)}


def mean_batch(url: str) -> float | None:
    import httpx

    text = httpx.get(f"{url}/metrics").text
    total = re.search(r"^ddro_batch_queries_sum (\S+)$", text, re.M)
    count = re.search(r"^ddro_batch_queries_count (\S+)$", text, re.M)
    return round(float(total.group(1)) / float(count.group(1)), 2) if total and float(count.group(1)) else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--collection", required=True)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--malformed", type=int, default=70)
    parser.add_argument("--hits", type=int, default=10)
    parser.add_argument("--beams", type=int, default=10)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from ddro.collections import load_collection

    texts = [q.text for q in load_collection(args.collection).queries]
    report = {"model": args.model, "collection": args.collection, "hits": args.hits, "beams": args.beams,
              "cpus": os.cpu_count(), "modes": {}}
    for mode in args.modes.split(","):
        process, url = start_service(args, MODES[mode])
        try:
            rows = []
            for concurrency in map(int, args.concurrency.split(",")):
                rows.append(asyncio.run(drive(url, texts, args.requests, concurrency, args.hits)))
                print(f"service_load: {mode} at concurrency {concurrency}: {rows[-1]['queries_per_second']} q/s",
                      file=sys.stderr, flush=True)
            report["modes"][mode] = {"runs": rows, "malformed": malformed(url, args.malformed),
                                     "mean_batch_queries": mean_batch(url)}
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=120)
    if "batched" in report["modes"] and "one-at-a-time" in report["modes"]:
        report["batched_over_one_at_a_time_qps"] = {
            str(a["concurrency"]): round(a["queries_per_second"] / b["queries_per_second"], 2)
            for a, b in zip(report["modes"]["batched"]["runs"], report["modes"]["one-at-a-time"]["runs"])}
    print(json.dumps(report, indent=1) if args.json else report)


if __name__ == "__main__":
    main()
