"""Real servers for the tests, each in a temporary folder of its own: a PostgreSQL cluster (Debian's
`postgresql` package; .ci/run installs it) listening on a free port of 127.0.0.1.

`postgres_server()` yields the server's SQLAlchemy URL, or raises Unavailable with the
reason it cannot start (no such package, psycopg missing, initdb failed): the fixture skips
the test with that reason. As root, the cluster runs as the `postgres` user (PostgreSQL
refuses root), so its folder is made outside pytest's (which only root may enter).

Example:
    with postgres_server() as url:     # postgresql://postgres@127.0.0.1:PORT/postgres
        optuna.create_study(storage=url)
"""

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile

__all__ = ["Unavailable", "postgres_server"]


class Unavailable(Exception):
    """The server cannot start here; str(exc) says why."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise Unavailable(f"PostgreSQL's {name} is not installed (apt-get install postgresql)")
    return found[-1]


@contextlib.contextmanager
def postgres_server():
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise Unavailable('psycopg is not installed (pip install -e ".[dev]")') from None
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    folder = tempfile.mkdtemp(prefix="mlrefresh-postgres-")
    data = os.path.join(folder, "pgdata")
    os.makedirs(data)
    as_user: list[str] = []
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(folder, "postgres")
        shutil.chown(data, "postgres")
    port = _free_port()

    def run(*command):
        done = subprocess.run([*as_user, *command], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            last = (done.stderr or done.stdout).strip().splitlines()[-1:]
            raise Unavailable(f"{os.path.basename(command[0])} failed: {' '.join(last)}")

    run(initdb, "-D", data, "-A", "trust", "-U", "postgres", "--no-sync")
    options = f"-p {port} -c listen_addresses=127.0.0.1 -k {data} -c fsync=off"
    run(pg_ctl, "-D", data, "-o", options, "-l", os.path.join(data, "log"), "-w", "start")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        with contextlib.suppress(Exception):
            run(pg_ctl, "-D", data, "-m", "fast", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)
