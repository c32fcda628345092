"""A throwaway PostgreSQL cluster on 127.0.0.1 for the test suite.

Used two ways, with one implementation:
- `tests/run.sh` (the README's test command, which CI runs) starts a cluster before pytest and
  stops it after: ``python3 -m tests.support.pgcluster start`` prints shell ``export`` lines;
  ``python3 -m tests.support.pgcluster stop DIR`` stops it and removes its data.
- a bare ``python3 -m pytest`` without ``NOTICEWATCH_TEST_POSTGRES_URL`` starts one for the
  session (the ``postgres_server`` fixture).

The cluster trusts local TCP connections, listens on loopback only with no Unix socket, and
runs with fsync off: it is thrown away, and durability is SQLite's and the server's own concern.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ENV_URL = "NOTICEWATCH_TEST_POSTGRES_URL"
SUPERUSER = "noticewatch"


class ClusterUnavailable(RuntimeError):
    """PostgreSQL's server programs are not installed, or the cluster did not start."""


@dataclass(frozen=True)
class Cluster:
    directory: Path
    port: int

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the maintenance database."""
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/postgres"


def server_bin(program: str) -> str:
    """Where `initdb`/`pg_ctl` live: PATH, or Debian's versioned directory."""
    found = shutil.which(program)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{program}"))
    if candidates:
        return candidates[-1]
    raise ClusterUnavailable(
        f"PostgreSQL's {program} is not installed: run the README's test command "
        "(`bash tests/run.sh`, which installs Debian's postgresql package), or set "
        f"{ENV_URL} to a server to use"
    )


def _as_server_user() -> list[str]:
    """initdb and postgres refuse to run as root: run them as Debian's `postgres` user."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError as e:
        raise ClusterUnavailable("running as root and there is no `postgres` user") from e
    return ["runuser", "-u", "postgres", "--"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(parent: Path | None = None) -> Cluster:
    directory = Path(tempfile.mkdtemp(prefix="noticewatch-pg-", dir=parent))
    prefix = _as_server_user()
    if prefix:
        shutil.chown(directory, user="postgres")
    data = directory / "data"
    port = _free_port()
    initdb = [*prefix, server_bin("initdb"), "-D", str(data), "-A", "trust", "-U", SUPERUSER]
    _check([*initdb, "-E", "UTF8", "--no-instructions"], "initdb")
    options = (
        f"-h 127.0.0.1 -p {port} -c unix_socket_directories='' -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=400"
    )
    ctl = [*prefix, server_bin("pg_ctl"), "-D", str(data), "-l", str(directory / "server.log")]
    _check([*ctl, "-o", options, "-w", "-t", "60", "start"], "pg_ctl start", directory)
    return Cluster(directory, port)


def stop(directory: Path) -> None:
    data = directory / "data"
    if data.exists():
        with contextlib.suppress(ClusterUnavailable, subprocess.CalledProcessError):
            subprocess.run(
                [
                    *_as_server_user(),
                    server_bin("pg_ctl"),
                    "-D",
                    str(data),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
                check=True,
                capture_output=True,
            )
    shutil.rmtree(directory, ignore_errors=True)


def _check(command: list[str], what: str, directory: Path | None = None) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        log = ""
        if directory is not None and (directory / "server.log").exists():
            log = (directory / "server.log").read_text(errors="replace")[-2000:]
        raise ClusterUnavailable(f"{what} failed: {done.stderr.strip()[-2000:]}\n{log}")


def main(argv: list[str]) -> int:
    if argv[:1] == ["start"]:
        cluster = start()
        print(f"export {ENV_URL}='{cluster.url}'")
        print(f"export NOTICEWATCH_TEST_POSTGRES_DIR='{cluster.directory}'")
        return 0
    if len(argv) == 2 and argv[0] == "stop":
        stop(Path(argv[1]))
        return 0
    print("usage: python3 -m tests.support.pgcluster start | stop DIR", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
