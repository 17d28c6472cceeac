"""A throwaway PostgreSQL server for the search tests: initdb into a temporary folder, listening only on a
unix socket there, as the `postgres` user (or `nobody`) when the tests run as root, which postgres refuses."""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

USER = "projlab"  # the database role initdb creates (trust authentication: the socket is in a private folder)


def _binary(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_user() -> list[str]:
    """The command prefix that runs a server process as a user other than root, where the tests are root."""
    if os.geteuid() != 0:
        return []
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return ["runuser", "-u", name, "--"]
    raise RuntimeError("running as root and neither a postgres nor a nobody user exists")


class Server:
    """Start with `start()` (RuntimeError, with the reason, where it cannot), stop with `stop()`."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="projlab-pg-"))
        self.port = _free_port()
        self.prefix: list[str] = []

    @property
    def url(self) -> str:
        return f"postgresql://{USER}@/postgres?host={self.folder}&port={self.port}"

    def _run(self, *cmd: str) -> None:
        out = subprocess.run([*self.prefix, *cmd], capture_output=True, text=True, timeout=120)
        if out.returncode:
            lines = (out.stderr or out.stdout).strip().splitlines()
            raise RuntimeError(f"{Path(cmd[0]).name} failed: {lines[-1] if lines else out.returncode}")

    def start(self) -> Server:
        initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
        if not initdb or not pg_ctl:
            raise RuntimeError("PostgreSQL is not installed (Debian package postgresql)")
        self.prefix = _as_user()
        if self.prefix:
            user = pwd.getpwnam(self.prefix[2])
            os.chown(self.folder, user.pw_uid, user.pw_gid)
        self._run(initdb, "-D", str(self.folder / "data"), "-U", USER, "--auth=trust", "--no-sync")
        options = f"-k {self.folder} -p {self.port} -c listen_addresses='' -c fsync=off -c max_connections=200"
        self._run(pg_ctl, "-D", str(self.folder / "data"), "-o", options, "-l", str(self.folder / "log"), "-w", "start")
        return self

    def stop(self) -> None:
        pg_ctl = _binary("pg_ctl")
        if pg_ctl and (self.folder / "data" / "postmaster.pid").exists():
            subprocess.run([*self.prefix, pg_ctl, "-D", str(self.folder / "data"), "-m", "immediate", "stop"],
                           capture_output=True, timeout=60)
        shutil.rmtree(self.folder, ignore_errors=True)
