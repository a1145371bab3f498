"""A throwaway PostgreSQL server for tests (Debian's `postgresql` package), or a visible skip where it can't run.

initdb refuses to run as root, so as root the cluster runs as the `postgres` user the package creates.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from typing import Iterator

import pytest

from tests.server.live_server import free_port


def _bin(name: str) -> str | None:
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found if isinstance(found, str) else (found[-1] if found else None)


@contextmanager
def postgres_url() -> Iterator[str]:
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql); PostgreSQL store test not run")
    user = None
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user to run the PostgreSQL server as")
    root = tempfile.mkdtemp(prefix="tunesmith-pg-", dir="/tmp")
    os.chmod(root, 0o755)
    if user is not None:
        os.chown(root, user.pw_uid, user.pw_gid)
    as_user = ["runuser", "-u", "postgres", "--"] if user is not None else []
    port = free_port()
    data = os.path.join(root, "data")
    log = os.path.join(root, "log")

    def run(*cmd: str) -> None:
        done = subprocess.run([*as_user, *cmd], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            pytest.skip(f"PostgreSQL could not start here ({' '.join(cmd[:2])}): {done.stderr.strip()[-500:]}")

    try:
        run(initdb, "-D", data, "-A", "trust", "-U", "tunesmith", "--no-sync")
        run(pg_ctl, "-D", data, "-l", log, "-w", "-o",
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
        yield f"postgresql+psycopg://tunesmith@127.0.0.1:{port}/postgres"
    finally:
        if os.path.exists(os.path.join(data, "postmaster.pid")):
            subprocess.run([*as_user, pg_ctl, "-D", data, "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)
