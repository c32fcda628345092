"""The sources.toml of the replica tests and benchmark: ``count`` RSS feeds on a loopback
FeedServer (``/s0000.xml`` ...) and one webhook notifier ``newsroom`` (secret ``${SECRET}``)
for the rule ``cv`` ("clearview")."""

from __future__ import annotations

import textwrap

from tests.support.feed_server import FeedServer


def feed_path(n: int) -> str:
    return f"/s{n:04d}.xml"


def replicas_config(
    db: str,
    feeds: FeedServer,
    hook_url: str,
    count: int,
    *,
    every: str = "15m",
    monitor: str = "",
    notifier: str = "",
) -> str:
    """``monitor`` and ``notifier`` are extra TOML lines for those tables."""
    sources = "".join(
        f'[[sources]]\nname = "s{n:04d}"\ntype = "rss"\nurl = "{feeds.url(feed_path(n))}"\n'
        f'every = "{every}"\n\n'
        for n in range(count)
    )
    head = textwrap.dedent(
        f"""
        [monitor]
        database = "{db}"
        http_port = 0
        {{monitor}}

        [[rules]]
        name = "cv"
        query = "clearview"

        [[notifiers]]
        name = "newsroom"
        type = "webhook"
        url = "{hook_url}"
        secret = "${{{{SECRET}}}}"
        allow_private = true
        {{notifier}}
        """
    )
    return head.format(monitor=monitor, notifier=notifier) + "\n" + sources
