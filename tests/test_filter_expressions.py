"""The file filter language of task callbacks: parsing, checking and matching (no server)."""

from __future__ import annotations

import os
from datetime import datetime, timezone

import pytest

from tiermover.service.errors import ValidationFailed
from tiermover.service.filter_expressions import (
    MAX_DEPTH, MAX_LENGTH, compile_filter, file_attributes,
)

REPORT = {
    "name": "report.txt", "path": "/docs/2024/report.txt", "extension": "txt", "type": "file",
    "size": 12_000_000, "mode": 0o100644, "uid": 1000, "gid": 100,
    "mtime": datetime(2023, 6, 1, tzinfo=timezone.utc), "atime": 1_700_000_000.0,
    "ctime": datetime(2023, 6, 1, 12, 30),  # naive: read as UTC
}


def matches(text: str, **changes) -> bool:
    return compile_filter(text).matches({**REPORT, **changes})


def error_of(text: str) -> str:
    with pytest.raises(ValidationFailed) as failure:
        compile_filter(text)
    assert list(failure.value.details) == ["script"]
    return failure.value.messages[0]


def test_the_documented_examples():
    example = 'size > 10MB and name ~ "*.txt" and not (path ~ "/tmp/*")'
    assert matches(example)
    assert not matches(example, path="/tmp/report.txt")
    assert not matches(example, size=10_000_000)
    assert matches('mtime < "2024-01-01" or uid == 1000', uid=0)
    assert matches('mtime < "2024-01-01" or uid == 1000', mtime=datetime(2025, 1, 1), uid=1000)
    assert not matches('mtime < "2024-01-01" or uid == 1000', mtime=datetime(2025, 1, 1), uid=1)
    assert matches('extension in ["jpg", "png", "txt"]')
    assert not matches('extension in ["jpg", "png"]')


@pytest.mark.parametrize("text, expected", [
    ("size == 12000000", True), ("size != 12000000", False), ("size >= 12MB", True),
    ("size > 12MB", False), ("size < 11.5 MiB", True), ("size <= 1KiB", False),
    ("size > 0.01GB", True), ("size > 1tb", False), ("size in [1, 12000000]", True),
    ("size not in [12000000]", False), ("uid = 1000", True), ("gid > 99", True),
    ("mode == 0644", True), ("mode == 0o644", True), ("mode == 420", True),
    ("mode != 0755", True), ('type == "file"', True), ('type ~ "f*"', True),
    ('type in ["folder"]', False), ('name ~ "REPORT*"', False), ('name !~ "*.tmp"', True),
    ('path ~ "/docs/*/report.???"', True), ('path ~ "/docs/[0-9]*"', True),
    ("name == 'report.txt'", True), ('name == "report.txt" AND NOT uid == 0', True),
    ('mtime == "2023-06-01"', True), ('mtime >= "2023-06-01T00:00:00+00:00"', True),
    ('mtime > "2023-06-01T00:00:01Z"', False), ('ctime > "2023-06-01T12:00:00"', True),
    ("atime == 1700000000", True), ('atime < "2023-11-14T22:13:21Z"', True),
    ("uid == 1 or uid == 2 or uid == 1000", True), ("uid == 1000 and gid == 1", False),
    ("not not uid == 1000", True), ("((uid == 1000))", True),
    ("uid == 1 or uid == 1000 and gid == 1", False),  # `and` binds tighter than `or`
    ("(uid == 1 or uid == 1000) and gid == 100", True),
])
def test_operators_literals_and_precedence(text, expected):
    assert matches(text) is expected


def test_name_and_extension_come_from_the_path_when_absent():
    only_path = compile_filter('name == "photo.JPG" and extension == "JPG"')
    assert only_path.matches({"path": "/c/holiday/photo.JPG"})
    assert compile_filter('extension == ""').matches({"path": "/c/.profile"})
    assert compile_filter('extension == ""').matches({"path": "/c/Makefile"})


def test_a_missing_attribute_matches_no_comparison():
    assert not compile_filter("uid == 1000").matches({})
    assert not compile_filter("uid != 1000").matches({})
    assert compile_filter("not uid == 1000").matches({})


def test_file_attributes_from_a_stat_result(tmp_path):
    target = tmp_path / "data.csv"
    target.write_bytes(b"x" * 2048)
    os.chmod(target, 0o640)
    attrs = file_attributes("/share/data.csv", os.stat(target))
    assert attrs["name"] == "data.csv" and attrs["extension"] == "csv"
    assert attrs["type"] == "file" and attrs["size"] == 2048 and attrs["mode"] == 0o640
    assert compile_filter('size == 2KiB and mode == 0640 and mtime > "2000-01-01"').matches(attrs)
    assert file_attributes("/share", os.stat(tmp_path))["type"] == "folder"


@pytest.mark.parametrize("text, expected", [
    ("", "can't be blank"),
    ("   ", "can't be blank"),
    ("size >", "expected a number or a \"string\", found end of text at position 7"),
    ("size > > 3", "expected a number or a \"string\", found > at position 8"),
    ("colour == 1", "unknown attribute 'colour'"),
    ("name == 1", "name is text"),
    ('size > "big"', "size is a number"),
    ("uid > 1MB", "size units only apply to size"),
    ("size > 10XB", "unknown size unit 'XB'"),
    ('type == "dir"', 'type is "file" or "folder"'),
    ('mtime < "last week"', "is not an ISO 8601 date"),
    ('mtime ~ "2024*"', "'~' does not apply to mtime"),
    ("size ~ 3", "'~' does not apply to size"),
    ('mtime in ["2024-01-01"]', "'in' does not apply to mtime"),
    ("(size > 1", "expected ')', found end of text at position 10"),
    ("size > 1)", "unexpected ) (expected and, or or the end) at position 9"),
    ("size > 1 uid == 2", "unexpected uid"),
    ("size > 1 and", "expected an attribute"),
    ('name ~ "abc', "string is not closed at position 8"),
    ("name == 'a\\q'", "unknown escape"),
    ("uid == 09", "octal"),
    ("size ? 3", "unexpected character '?' at position 6"),
    ("uid not 3", "expected 'in' after 'not'"),
    ("uid in 3", "expected '[' to start a list"),
    ('uid in [1, "a"]', "uid is a number"),
    ("uid in [1 2]", "expected ',' or ']'"),
    ("__import__('os')", "unknown attribute '__import__'"),
    ("size.__class__ == 1", "unexpected character '.'"),
])
def test_errors_say_what_is_wrong_and_where(text, expected):
    assert expected in error_of(text)


def test_length_and_depth_are_limited():
    assert "too long" in error_of("size > 1 or " * (MAX_LENGTH // 12) + "size > 1")
    deep = "(" * (MAX_DEPTH + 1) + "size > 1" + ")" * (MAX_DEPTH + 1)
    assert f"nested more than {MAX_DEPTH} levels deep" in error_of(deep)
    assert "nested" in error_of("not " * (MAX_DEPTH + 1) + "size > 1")
    just_deep_enough = "(" * MAX_DEPTH + "size > 1" + ")" * MAX_DEPTH
    assert compile_filter(just_deep_enough).matches(REPORT)


def test_long_flat_expressions_do_not_recurse():
    text = " or ".join(f"uid == {n}" for n in range(300))
    assert len(text) <= MAX_LENGTH
    assert compile_filter(text).matches({"uid": 299})


def test_globs_cannot_backtrack_catastrophically():
    hostile = compile_filter('name ~ "' + "*a" * 40 + '*b"')
    assert not hostile.matches({"name": "a" * 5000})


def test_non_text_is_refused_as_blank():
    with pytest.raises(ValidationFailed):
        compile_filter(None)
    with pytest.raises(ValidationFailed):
        compile_filter(42)
