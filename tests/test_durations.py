from datetime import timedelta

import pytest

from monitor.config.durations import format_duration, parse_duration


@pytest.mark.parametrize("text, seconds", [("30s", 30), ("5m", 300), ("1h", 3600), ("1h30m", 5400), ("500ms", 0.5), (90, 90), ("2d", 172800)])
def test_parse(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["5 minutes", "", "m5", "10x", "-5s", True, "1h 30m"])
def test_invalid(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_format_roundtrip():
    for text in ["30s", "5m", "1h30m", "500ms", "2d"]:
        assert format_duration(parse_duration(text)) == text
