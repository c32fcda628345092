"""Starts ``noticewatch run`` processes by forking one interpreter that imported it once.

The crash tests start ``run`` a dozen times per test; a fresh interpreter spends about
1.5 s of CPU importing noticewatch before it touches the database (3 s and more on a
busy machine), which would make up half of their time. This helper imports
``monitor.cli`` once and forks a child per request that runs ``main(["run", ...])``:
a real, separate ``run`` process with its own pid, signals, sockets and SQLite
connections, killed and stopped like any other. Nothing is open when it forks (no
thread, no connection: importing noticewatch starts neither).

Protocol, one line each: the test writes a log file path to stdin; the helper answers
``started PID``, and ``exited PID CODE`` when that child ends (CODE as
``subprocess`` gives it: negative for a signal). EOF on stdin ends the helper.
"""

from __future__ import annotations

import os
import random
import sys
import traceback

from monitor.cli import main


def child(log: str) -> None:
    """Become ``noticewatch run`` writing to ``log``; never returns."""
    code = 1
    try:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        random.seed()  # as a fresh interpreter would: not the helper's sequence
        code = main(["run", "--log-format", "json"])
    except BaseException:  # reported in the log, as the interpreter would
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    for line in sys.stdin:
        pid = os.fork()
        if pid == 0:
            child(line.strip())
        print(f"started {pid}", flush=True)
        _, status = os.waitpid(pid, 0)  # one run at a time: the tests restart, not overlap
        print(f"exited {pid} {os.waitstatus_to_exitcode(status)}", flush=True)


if __name__ == "__main__":
    serve()
