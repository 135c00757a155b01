"""Test helpers that need no database."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx

from dbmcp.demo.pg import free_port


def write_config(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip())
    return path


async def audit_record(path: Path, **fields: object) -> tuple[dict, str]:
    """The first audit line holding all `fields`, and the file's whole text. A server writes its lines in
    batches, within audit.FLUSH_SECONDS of a call's end, so this waits up to 5 s for the line to arrive."""
    deadline = time.monotonic() + 5
    while True:
        text = path.read_text() if path.exists() else ""  # noqa: ASYNC240 - a small local file
        for line in text.splitlines():
            record = json.loads(line)
            if all(record.get(k) == v for k, v in fields.items()):
                return record, text
        assert time.monotonic() < deadline, f"no audit line with {fields} in:\n{text}"
        await asyncio.sleep(0.01)


class ServeProcess:
    """`dbmcp serve` as a real subprocess on a free loopback port."""

    def __init__(self, config: Path, env: dict[str, str] | None = None, args: tuple[str, ...] = ()):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dbmcp.cli", "serve", "--config", str(config), "--port", str(self.port), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **(env or {})},
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dbmcp serve exited: {self.proc.stderr.read().decode()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    pass
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except (OSError, httpx.HTTPError):
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("dbmcp serve did not become healthy")

    def stop(self, sig: int = 15, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)
