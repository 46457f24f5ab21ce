"""A throw-away PostgreSQL server for tests of multi-worker studies.

The server binaries come from the system (Debian's layout,
/usr/lib/postgresql/<version>/bin); when running as root the server runs as
the ``postgres`` user, since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Optional


def find_bin() -> Optional[Path]:
    for env in ("LBGAP_PG_BIN",):
        if os.environ.get(env):
            return Path(os.environ[env])
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerURL(str):
    """The server's URL, which can also restart the server (tests of workers that outlive a restart)."""

    restart_command: list[str]
    env: dict[str, str]

    def restart(self) -> None:
        """Stop the server (its connections are cut) and start it again with the same options."""
        subprocess.run(self.restart_command, check=True, capture_output=True, env=self.env)


def run_server() -> Iterator[str]:
    """Start a server on a free loopback port; yield its URL (a :class:`ServerURL`); stop it."""
    bindir = find_bin()
    if bindir is None:
        raise FileNotFoundError("PostgreSQL server binaries (initdb, pg_ctl) not found")
    base = Path(tempfile.mkdtemp(prefix="lbgap-pg-"))
    data = base / "data"
    port = _free_port()
    as_root = os.geteuid() == 0
    prefix: list[str] = []
    if as_root:
        user = pwd.getpwnam("postgres")
        os.chown(base, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    env = {**os.environ, "LC_ALL": "C"}
    subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "lbgap", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True, env=env)
    subprocess.run(
        [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-w",
         "-o", f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
        check=True, capture_output=True, env=env,
    )
    try:
        url = ServerURL(f"postgresql+psycopg2://lbgap@127.0.0.1:{port}/postgres")
        url.restart_command = [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-w",
                               "-m", "fast", "restart"]
        url.env = env
        deadline = time.time() + 30
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        yield url
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, env=env)
        shutil.rmtree(base, ignore_errors=True)
