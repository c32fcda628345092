"""Log formats: JSON lines with the source/notifier as fields, text on a terminal, secrets
scrubbed in both."""

from __future__ import annotations

import io
import json
import logging

import pytest

from monitor.logs import JsonFormatter, SecretFilter, default_format, setup_logging

SECRET = "whsec_c2VjcmV0LXZhbHVlLWZvci10ZXN0cw=="


def emit(formatter: logging.Formatter, secrets: list[str], *args: object) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(SecretFilter(secrets))
    logger = logging.getLogger("noticewatch.test-logs")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning(*args)  # type: ignore[arg-type]
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_json_lines_carry_the_source_and_notifier_as_fields() -> None:
    line = emit(
        JsonFormatter(), [SECRET],
        "notifier=%s alert=%s outcome=retry error=%s", "newsroom", "msg_1", f"key {SECRET}",
    )  # fmt: skip
    record = json.loads(line)
    assert record["level"] == "warning" and record["logger"] == "noticewatch.test-logs"
    assert (record["notifier"], record["alert"], record["outcome"]) == (
        "newsroom",
        "msg_1",
        "retry",
    )
    assert record["message"].endswith("error=key ***")
    assert SECRET not in line
    assert record["time"].endswith("+00:00")


def test_secrets_given_later_are_scrubbed_too() -> None:
    scrubber = SecretFilter([])
    scrubber.update([SECRET])
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "sub %s", (SECRET,), None)
    assert scrubber.filter(record) and record.getMessage() == "sub ***"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_json_is_the_default_unless_stdout_is_a_terminal() -> None:
    assert default_format(io.StringIO()) == "json"
    assert default_format(_Terminal()) == "text"


def test_setup_logging_installs_the_chosen_format(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("INFO", [SECRET], "json")
    logging.getLogger("noticewatch.pipeline").info("source=%s outcome=ok %s", "ap-nl", SECRET)
    setup_logging("INFO", [SECRET], "text")
    logging.getLogger("noticewatch.pipeline").info("source=%s outcome=ok", "ap-nl")
    first, second = capsys.readouterr().out.splitlines()
    assert json.loads(first)["source"] == "ap-nl" and SECRET not in first
    assert second.endswith("INFO    noticewatch.pipeline source=ap-nl outcome=ok")


def test_a_crashed_task_line_names_its_source_or_notifier() -> None:
    source = json.loads(emit(JsonFormatter(), [], "task=%s outcome=crashed", "source:ap-nl"))
    notifier = json.loads(emit(JsonFormatter(), [], "task=%s outcome=crashed", "deliver:desk"))
    assert source["source"] == "ap-nl" and notifier["notifier"] == "desk"
