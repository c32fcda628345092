"""``python -m storage.migrations new "add items.notice_id"``: write the next revision.

It upgrades a scratch SQLite database to the newest revision, lets Alembic compare it
with the tables in ``storage/tables.py`` and writes what differs as
``versions/NNNN_<slug>.py`` with the next number. Read the result before committing:
autogenerate misses renames and server defaults, and data migrations are yours to add.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

from alembic import command
from sqlalchemy import create_engine

from storage import migrations


def next_revision_id() -> str:
    return f"{int(migrations.head()) + 1:04d}"


def new_revision(message: str) -> Path:
    rev_id = next_revision_id()
    slug = re.sub(r"[^a-z0-9]+", "_", message.lower()).strip("_")[:40] or "revision"
    with tempfile.TemporaryDirectory() as scratch:
        engine = create_engine(f"sqlite:///{Path(scratch) / 'scratch.db'}")
        try:
            migrations.upgrade(engine)
            with engine.begin() as connection:
                config = migrations.alembic_config(connection)
                config.set_main_option("file_template", f"%%(rev)s_{slug}")
                script = command.revision(config, message=message, autogenerate=True, rev_id=rev_id)
        finally:
            engine.dispose()
    assert script is not None and not isinstance(script, list)
    return Path(script.path)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "new":
        print('usage: python -m storage.migrations new "what the revision changes"')
        return 2
    path = new_revision(argv[1])
    print(f"wrote {path}: read it, run ruff format on it, and run tests/test_migrations.py")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
