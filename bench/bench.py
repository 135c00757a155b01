"""dbmcp's own benchmark: `sql_query` over real HTTP on loopback next to the asyncpg floor.

    ./dev bench [--n 1000] [--duration 10] [--concurrency 8] [--big-rows 1000000]
    ./dev bench --compare [--rounds 3]

Starts an embedded PostgreSQL with the demo store plus a table of --big-rows rows, then `dbmcp serve`
(auth off, audit off) as a subprocess, and prints:
  - point query p50/p95 over HTTP, and the same query on a raw asyncpg connection (the floor);
  - calls/s with --concurrency clients for --duration seconds, and server CPU ms per call;
  - a capped `SELECT *` over the big table: time, rows, truncated, bytes, and the server's peak RSS;
  - the tools/list answer size in bytes.
Timing lives here, never in tests. The client is a minimal keep-alive HTTP/1.1 POST so that the client's
own cost (httpx is ~1 ms per request) does not hide the server's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dbmcp.demo.launcher import DATABASE, ROLE, prepare  # noqa: E402
from dbmcp.demo.pg import EmbeddedPostgres, free_port  # noqa: E402

POINT = "SELECT * FROM store.customers WHERE id = {id}"
HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
           "MCP-Protocol-Version": "2025-06-18"}
BENCH_KEY = "dbmcp_bench_key_0123456789abcdef"


class Http1:
    """One keep-alive HTTP/1.1 connection that POSTs JSON and reads Content-Length bodies."""

    def __init__(self, host: str, port: int, path: str):
        self.host, self.port, self.path = host, port, path

    async def open(self) -> Http1:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def post(self, body: dict) -> bytes:
        data = json.dumps(body).encode()
        head = "".join(f"{k}: {v}\r\n" for k, v in HEADERS.items())
        self.writer.write(
            f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{head}"
            f"Content-Length: {len(data)}\r\n\r\n".encode() + data
        )
        status = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        payload = await self.reader.readexactly(length)
        if b" 200 " not in status:
            raise RuntimeError(f"HTTP {status!r}: {payload[:200]!r}")
        return payload

    async def call(self, sql: str, database: str = DATABASE) -> dict:
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": "sql_query", "arguments": {"database": database, "sql": sql}}}
        return json.loads(await self.post(body))["result"]

    def close(self) -> None:
        self.writer.close()


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def cpu_ms(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> tuple[float, float]:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


async def floor(dsn: str, ids: list[int]) -> list[float]:
    conn = await asyncpg.connect(dsn)
    times = []
    for i in ids:
        t = time.perf_counter()
        await conn.fetch(POINT.format(id=i))
        times.append((time.perf_counter() - t) * 1000)
    await conn.close()
    return times


async def point(port: int, ids: list[int]) -> list[float]:
    c = await Http1("127.0.0.1", port, "/mcp").open()
    times = []
    for i in ids:
        t = time.perf_counter()
        result = await c.call(POINT.format(id=i))
        times.append((time.perf_counter() - t) * 1000)
        assert f"customer{i}@example.com" in json.dumps(result), result
    c.close()
    return times


def tree_cpu_ms(pid: int) -> float:
    """CPU of a process and its children (uvicorn's workers)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    kids = [int(c) for c in children.read_text().split()] if children.exists() else []
    return cpu_ms(pid) + sum(cpu_ms(k) for k in kids)


async def throughput(port: int, clients: int, duration: float, pid: int, tree: bool = False) -> tuple[float, float]:
    conns = [await Http1("127.0.0.1", port, "/mcp").open() for _ in range(clients)]
    rng = random.Random(7)
    count = 0
    stop = time.perf_counter() + duration

    async def worker(c: Http1) -> None:
        nonlocal count
        while time.perf_counter() < stop:
            result = await c.call(POINT.format(id=rng.randint(1, 1000)))
            assert not result.get("isError"), result
            count += 1

    measure = tree_cpu_ms if tree else cpu_ms
    cpu0, t0 = measure(pid), time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    elapsed, cpu = time.perf_counter() - t0, measure(pid) - cpu0
    for c in conns:
        c.close()
    return count / elapsed, cpu / max(count, 1)


async def big_scan(port: int, pid: int) -> dict:
    c = await Http1("127.0.0.1", port, "/mcp").open()
    peak = 0.0
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_mb(pid)[0])
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample())
    t = time.perf_counter()
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "sql_query", "arguments": {"database": DATABASE, "sql": "SELECT * FROM bench.big"}}}
    raw = await c.post(body)
    elapsed = (time.perf_counter() - t) * 1000
    done.set()
    await sampler
    c.close()
    result = json.loads(raw)["result"]["structuredContent"]
    return {"ms": elapsed, "rows": result["row_count"], "truncated": result["truncated"], "bytes": len(raw),
            "peak_rss_mb": max(peak, rss_mb(pid)[1])}


async def load_big(pg: EmbeddedPostgres, rows: int) -> None:
    conn = await asyncpg.connect(pg.dsn(DATABASE))
    await conn.execute(f"""
        CREATE SCHEMA bench;
        CREATE TABLE bench.big AS SELECT i AS id, 'ref-' || lpad(i::text, 8, '0') AS ref, (i % 977) * 1.25 AS amount,
               timestamptz '2025-01-01' + i * interval '1 second' AS at FROM generate_series(1, {int(rows)}) i;
        GRANT USAGE ON SCHEMA bench TO {ROLE}; GRANT SELECT ON bench.big TO {ROLE};
    """)
    await conn.close()


def start_server(pg: EmbeddedPostgres, tmp: Path, max_rows: int, auth: bool = False, workers: int = 1,
                 audit: bool | None = None, wrap: tuple[str, ...] = ()) -> tuple[subprocess.Popen, int, float]:
    """dbmcp serve; with `auth`, API-key auth and (unless `audit` says otherwise) the audit log to a file (the
    production setting). `wrap` is a command to run the server under (e.g. valgrind)."""
    from dbmcp.auth.api_keys import digest

    port = free_port()
    config = tmp / "bench.yaml"
    config.write_text(json.dumps({
        "server": {"port": port},
        "auth": {"mode": "api_keys", "api_keys": [{"name": "bench", "key_sha256": digest(BENCH_KEY),
                                                   "scopes": [f"{DATABASE}:read"]}]} if auth else {"mode": "none"},
        "limits": {"max_rows": max_rows, "max_bytes": 64_000_000},
        "databases": {DATABASE: {"engine": "postgres", "url": pg.dsn(DATABASE, user=ROLE),
                                 "include": ["store.*", "bench.*"]}},
        "audit": {"path": str(tmp / "audit.jsonl") if (auth if audit is None else audit) else "off"},
    }))
    HEADERS.pop("Authorization", None)
    if auth:
        HEADERS["Authorization"] = f"Bearer {BENCH_KEY}"
    t = time.perf_counter()
    proc = subprocess.Popen([*wrap, sys.executable, "-m", "dbmcp.cli", "--log-level", "warning", "serve",
                             "--config", str(config), "--workers", str(workers)], stderr=subprocess.DEVNULL)

    async def first_list() -> None:
        while True:
            try:
                c = await Http1("127.0.0.1", port, "/mcp").open()
                await c.post({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
                c.close()
                return
            except OSError:
                await asyncio.sleep(0.025)

    asyncio.run(first_list())
    return proc, port, time.perf_counter() - t


async def tools_list_bytes(port: int) -> int:
    c = await Http1("127.0.0.1", port, "/mcp").open()
    raw = await c.post({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    c.close()
    return len(json.dumps(json.loads(raw)["result"]["tools"], separators=(",", ":")))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="sequential point queries")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--big-rows", type=int, default=1_000_000)
    ap.add_argument("--max-rows", type=int, default=10_000, help="limits.max_rows for the run")
    ap.add_argument("--compare", action="store_true",
                    help="only calls/s and CPU per call: auth off, api_keys + audit file, and --workers 2")
    ap.add_argument("--rounds", type=int, default=3, help="--compare: rounds of the three settings, taking turns")
    a = ap.parse_args()
    if a.compare:
        return compare(a)
    rng = random.Random(42)
    ids = [rng.randint(1, 1000) for _ in range(a.n)]
    with EmbeddedPostgres() as pg, tempfile.TemporaryDirectory() as tmp:
        asyncio.run(prepare(pg))
        asyncio.run(load_big(pg, a.big_rows))
        proc, port, cold = start_server(pg, Path(tmp), a.max_rows)
        try:
            asyncio.run(point(port, ids[:100]))  # warm-up
            asyncio.run(floor(pg.dsn(DATABASE, user=ROLE), ids[:100]))
            floor_t = asyncio.run(floor(pg.dsn(DATABASE, user=ROLE), ids))
            http_t = asyncio.run(point(port, ids))
            rate, cpu = asyncio.run(throughput(port, a.concurrency, a.duration, proc.pid))
            scan = asyncio.run(big_scan(port, proc.pid))
            tl = asyncio.run(tools_list_bytes(port))
        finally:
            proc.terminate()
            proc.wait(30)
    f50, h50 = statistics.median(floor_t), statistics.median(http_t)
    print("| figure | value | target |")
    print("| --- | --- | --- |")
    print(f"| point p50 / p95, dbmcp over HTTP | {h50:.2f} / {pct(http_t, 95):.2f} ms | |")
    print(f"| point p50 / p95, asyncpg floor | {f50:.2f} / {pct(floor_t, 95):.2f} ms | |")
    print(f"| p50 overhead over the floor | {h50 - f50:.2f} ms ({h50 / f50:.1f}x) | <= 2 ms |")
    print(f"| calls/s, {a.concurrency} clients, {a.duration:g} s | {rate:,.0f} | >= 400 |")
    print(f"| server CPU per call under load | {cpu:.2f} ms | |")
    print(f"| capped SELECT * over {a.big_rows:,} rows (max_rows {a.max_rows:,}) | {scan['ms']:.0f} ms, "
          f"{scan['rows']:,} rows, truncated={str(scan['truncated']).lower()}, {scan['bytes'] / 1e6:.1f} MB | |")
    print(f"| server peak RSS during that scan | {scan['peak_rss_mb']:.0f} MB | < 150 MB |")
    print(f"| tools/list size | {tl:,} bytes | < 6 KB |")
    print(f"| cold start (spawn -> first tools/list) | {cold:.2f} s | |")
    return 0


def compare(a: argparse.Namespace) -> int:
    """Throughput and server CPU per call in three settings, on one database, taking turns for --rounds rounds
    (so that the machine's drift hits every setting alike); medians are printed."""
    settings = (("auth off, audit off", False, 1), ("api_keys + audit file", True, 1),
                ("auth off, --workers 2", False, 2))
    results: dict[str, list[tuple[float, float]]] = {label: [] for label, _, _ in settings}
    with EmbeddedPostgres() as pg, tempfile.TemporaryDirectory() as tmp:
        asyncio.run(prepare(pg))
        for _ in range(a.rounds):
            for label, auth, workers in settings:
                proc, port, _ = start_server(pg, Path(tmp), a.max_rows, auth=auth, workers=workers)
                try:
                    asyncio.run(point(port, list(range(1, 200))))
                    results[label].append(
                        asyncio.run(throughput(port, a.concurrency, a.duration, proc.pid, tree=workers > 1)))
                finally:
                    proc.terminate()
                    proc.wait(30)
                    HEADERS.pop("Authorization", None)
    print(f"| setting | calls/s (median of {a.rounds}) | × auth off | server CPU ms/call (median; min–max) "
          "| × auth off |")
    print("| --- | --- | --- | --- | --- |")
    base_rate, base_cpu = (statistics.median(x[i] for x in results[settings[0][0]]) for i in (0, 1))
    for label, runs in results.items():
        rate, cpu = statistics.median(r for r, _ in runs), statistics.median(c for _, c in runs)
        spread = f"{min(c for _, c in runs):.3f}–{max(c for _, c in runs):.3f}"
        print(f"| {label} | {rate:,.0f} | {rate / base_rate:.2f} | {cpu:.3f} ({spread}) | {cpu / base_cpu:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
