"""Instructions per `sql_query` call, counted by callgrind: auth and audit on and off, side by side.

    ./dev bench instructions [--calls 2000] [--concurrency 8] [--only off,auth,audit,both]

CPU time per call moves 5-15 % between runs on a shared 2-core machine, which hides a difference of a few
percent. Instruction counts do not move: the same build, settings and calls give the same count within
about 0.1 %. Each setting runs `dbmcp serve` under `valgrind --tool=callgrind` with instrumentation off, sends 300
warm-up calls, switches instrumentation on for --calls point queries from --concurrency clients, and divides.
Needs valgrind (and its callgrind_control). A call costs ~50x its normal time under valgrind, so the server
batches differently (e.g. fewer audit lines per write): compare settings, not absolute figures, and read the
CPU-time figures of `./dev bench --compare` next to these.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import POINT, Http1, start_server

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dbmcp.demo.launcher import prepare  # noqa: E402
from dbmcp.demo.pg import EmbeddedPostgres  # noqa: E402

SETTINGS = {  # name: (api_keys auth, audit file)
    "off": (False, False),
    "auth": (True, False),
    "audit": (False, True),
    "both": (True, True),
}


async def load(port: int, calls: int, clients: int) -> None:
    conns = [await Http1("127.0.0.1", port, "/mcp").open() for _ in range(clients)]
    rng = random.Random(7)
    left = calls

    async def worker(c: Http1) -> None:
        nonlocal left
        while left > 0:
            left -= 1
            result = await c.call(POINT.format(id=rng.randint(1, 1000)))
            assert not result.get("isError"), result

    await asyncio.gather(*(worker(c) for c in conns))
    for c in conns:
        c.close()


def count(pg: EmbeddedPostgres, tmp: Path, name: str, calls: int, clients: int) -> float:
    auth, audit = SETTINGS[name]
    out = tmp / f"{name}.callgrind"
    wrap = ("valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}")
    proc, port, _ = start_server(pg, tmp, 10_000, auth=auth, audit=audit, wrap=wrap)
    try:
        asyncio.run(load(port, 300, clients))
        subprocess.run(["callgrind_control", "--instr=on", str(proc.pid)], check=True, capture_output=True)
        asyncio.run(load(port, calls, clients))
        subprocess.run(["callgrind_control", "--instr=off", str(proc.pid)], check=True, capture_output=True)
    finally:
        proc.terminate()
        proc.wait(120)
    totals = re.search(r"^totals:\s+(\d+)", out.read_text(), re.M)
    assert totals, f"no totals in {out}"
    return int(totals.group(1)) / calls


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--only", default=",".join(SETTINGS), help="settings, comma-separated: " + ", ".join(SETTINGS))
    a = ap.parse_args()
    names = a.only.split(",")
    if unknown := set(names) - set(SETTINGS):
        ap.error(f"unknown settings: {', '.join(sorted(unknown))}")
    if not (shutil.which("valgrind") and shutil.which("callgrind_control")):
        print("valgrind (with callgrind_control) is not installed", file=sys.stderr)
        return 2
    with EmbeddedPostgres() as pg, tempfile.TemporaryDirectory() as tmp:
        asyncio.run(prepare(pg))
        figures = {name: count(pg, Path(tmp), name, a.calls, a.concurrency) for name in names}
    base = figures.get("off")
    print(f"| setting (api_keys auth, audit file) | instructions per call ({a.calls} calls, {a.concurrency} clients) "
          "| × off |")
    print("| --- | --- | --- |")
    for name, ir in figures.items():
        ratio = f"{ir / base:.3f}" if base else "–"
        print(f"| {name} {SETTINGS[name]} | {ir:,.0f} | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
