"""Ranges, conditional requests and copy-source headers, as tables."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from residency.gateway import http
from residency.gateway.errors import S3Error

SIZE = 1000


def raised(action: Callable[[], object]) -> S3Error | None:
    """The S3Error `action` raises, or None (for tables where both outcomes are valid)."""
    try:
        action()
    except S3Error as err:
        return err
    return None


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-99", (0, 99)),
        ("bytes=0-0", (0, 0)),
        ("bytes=900-", (900, 999)),
        ("bytes=999-", (999, 999)),
        ("bytes=-100", (900, 999)),
        ("bytes=-5000", (0, 999)),  # suffix longer than the object: the whole object
        ("bytes=500-5000", (500, 999)),  # end past the object is clipped
        ("BYTES = 1 - 2", (1, 2)),
        # ignored, S3 serves the whole object with 200:
        ("bytes=0-1,5-6", None),
        ("bytes=5-1", None),
        ("items=0-1", None),
        ("bytes=a-b", None),
        ("bytes=-", None),
        ("bytes=1-2-3", None),
    ],
)
def test_range_table(header: str | None, expected: tuple[int, int] | None) -> None:
    result = http.parse_range(header, SIZE)
    if expected is None:
        assert result is None
    else:
        assert result is not None
        assert (result.start, result.end) == expected
        assert result.length == expected[1] - expected[0] + 1
        assert result.content_range == f"bytes {expected[0]}-{expected[1]}/{SIZE}"


@pytest.mark.parametrize(
    ("header", "size"),
    [("bytes=1000-", SIZE), ("bytes=1000-2000", SIZE), ("bytes=-0", SIZE), ("bytes=0-", 0),
     ("bytes=-1", 0)],
)  # fmt: skip
def test_unsatisfiable_ranges(header: str, size: int) -> None:
    with pytest.raises(S3Error) as exc:
        http.parse_range(header, size)
    err = exc.value
    assert (err.code, err.status) == ("InvalidRange", 416)
    assert err.fields["ActualObjectSize"] == str(size)
    assert err.fields["RangeRequested"] == header
    assert err.headers["Content-Range"] == f"bytes */{size}"


@given(size=st.integers(0, 10_000), a=st.integers(0, 20_000), b=st.integers(0, 20_000))
def test_range_is_always_inside_the_object(size: int, a: int, b: int) -> None:
    for header in (f"bytes={a}-{b}", f"bytes={a}-", f"bytes=-{b}"):
        error = raised(lambda h=header: http.parse_range(h, size))
        if error is not None:
            assert error.code == "InvalidRange"
            continue
        result = http.parse_range(header, size)
        if result is not None:
            assert 0 <= result.start <= result.end < size


# --- conditionals ---------------------------------------------------------------------------

ETAG = '"abc123"'
MODIFIED = dt.datetime(2026, 11, 23, 9, 0, 0, 700_000, tzinfo=dt.UTC)  # sub-second part ignored
BEFORE = "Mon, 23 Nov 2026 08:00:00 GMT"
AT = "Mon, 23 Nov 2026 09:00:00 GMT"
AFTER = "Mon, 23 Nov 2026 10:00:00 GMT"

OK, NOT_MODIFIED, FAILED = 200, 304, 412


@pytest.mark.parametrize(
    ("headers", "method", "outcome"),
    [
        ({}, "GET", OK),
        ({"If-Match": ETAG}, "GET", OK),
        ({"If-Match": "abc123"}, "GET", OK),  # unquoted: still the same tag
        ({"If-Match": '"x", "abc123"'}, "GET", OK),
        ({"If-Match": "*"}, "GET", OK),
        ({"If-Match": '"other"'}, "GET", FAILED),
        ({"If-None-Match": ETAG}, "GET", NOT_MODIFIED),
        ({"If-None-Match": ETAG}, "HEAD", NOT_MODIFIED),
        ({"If-None-Match": ETAG}, "PUT", FAILED),
        ({"If-None-Match": "*"}, "GET", NOT_MODIFIED),
        ({"If-None-Match": '"other"'}, "GET", OK),
        ({"If-None-Match": 'W/"abc123"'}, "GET", NOT_MODIFIED),  # weak comparison
        ({"If-Modified-Since": BEFORE}, "GET", OK),
        ({"If-Modified-Since": AT}, "GET", NOT_MODIFIED),
        ({"If-Modified-Since": AFTER}, "GET", NOT_MODIFIED),
        ({"If-Modified-Since": AT}, "PUT", OK),  # only for GET/HEAD
        ({"If-Modified-Since": "not a date"}, "GET", OK),  # invalid dates are ignored
        ({"If-Unmodified-Since": AFTER}, "GET", OK),
        ({"If-Unmodified-Since": AT}, "GET", OK),
        ({"If-Unmodified-Since": BEFORE}, "GET", FAILED),
        ({"If-Unmodified-Since": BEFORE}, "PUT", FAILED),
        # S3 precedence: If-Match true + If-Unmodified-Since false -> 200
        ({"If-Match": ETAG, "If-Unmodified-Since": BEFORE}, "GET", OK),
        # If-None-Match false + If-Modified-Since true -> 304
        ({"If-None-Match": ETAG, "If-Modified-Since": BEFORE}, "GET", NOT_MODIFIED),
        # If-None-Match true wins over a failing If-Modified-Since
        ({"If-None-Match": '"other"', "If-Modified-Since": AFTER}, "GET", OK),
        # 412 is decided before 304
        ({"If-Match": '"other"', "If-None-Match": ETAG}, "GET", FAILED),
        ({"if-match": '"other"'}, "GET", FAILED),  # header names in any case
    ],
)
def test_conditional_table(headers: dict[str, str], method: str, outcome: int) -> None:
    error = raised(
        lambda: http.check_preconditions(headers, etag=ETAG, last_modified=MODIFIED, method=method)
    )
    assert (error.status if error else OK) == outcome
    if error is not None and error.status == NOT_MODIFIED:
        assert not error.has_body
        assert error.headers == {"ETag": ETAG, "Last-Modified": AT}
    elif error is not None:
        assert error.code == "PreconditionFailed"
        assert error.fields["Condition"].lower().startswith("if-")


def test_conditional_put_on_a_missing_object() -> None:
    http.check_preconditions({"If-None-Match": "*"}, etag=None, last_modified=None, method="PUT")
    with pytest.raises(S3Error) as exc:
        http.check_preconditions({"If-Match": ETAG}, etag=None, last_modified=None, method="PUT")
    assert exc.value.code == "PreconditionFailed"
    with pytest.raises(S3Error) as exc:
        http.check_preconditions(
            {"If-None-Match": "*"}, etag=ETAG, last_modified=MODIFIED, method="PUT"
        )
    assert exc.value.code == "PreconditionFailed"


@pytest.mark.parametrize(
    ("headers", "ok"),
    [
        ({}, True),
        ({"x-amz-copy-source-if-match": ETAG}, True),
        ({"x-amz-copy-source-if-match": '"nope"'}, False),
        ({"x-amz-copy-source-if-none-match": ETAG}, False),
        ({"x-amz-copy-source-if-none-match": '"nope"'}, True),
        ({"x-amz-copy-source-if-modified-since": BEFORE}, True),
        ({"x-amz-copy-source-if-modified-since": AFTER}, False),
        ({"x-amz-copy-source-if-unmodified-since": AFTER}, True),
        ({"x-amz-copy-source-if-unmodified-since": BEFORE}, False),
        (
            {"x-amz-copy-source-if-match": ETAG, "x-amz-copy-source-if-unmodified-since": BEFORE},
            True,
        ),
        (
            {
                "x-amz-copy-source-if-none-match": ETAG,
                "x-amz-copy-source-if-modified-since": BEFORE,
            },
            False,
        ),
        ({"If-Match": '"ignored for the source"'}, True),
    ],
)
def test_copy_source_conditions(headers: dict[str, str], ok: bool) -> None:
    if ok:
        http.check_copy_source_conditions(headers, etag=ETAG, last_modified=MODIFIED)
    else:
        with pytest.raises(S3Error) as exc:
            http.check_copy_source_conditions(headers, etag=ETAG, last_modified=MODIFIED)
        assert (exc.value.code, exc.value.status) == ("PreconditionFailed", 412)
        assert exc.value.fields["Condition"].startswith("x-amz-copy-source-")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("bytes=0-99", (0, 99)), ("bytes=999-999", (999, 999)), ("bytes=10-10", (10, 10))],
)
def test_copy_source_range(value: str, expected: tuple[int, int]) -> None:
    result = http.parse_copy_source_range(value, SIZE)
    assert (result.start, result.end) == expected


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("bytes=0-", "InvalidArgument"),
        ("bytes=-10", "InvalidArgument"),
        ("bytes=5-1", "InvalidArgument"),
        ("0-10", "InvalidArgument"),
        ("bytes=0-1000", "InvalidRange"),
        ("bytes=2000-3000", "InvalidRange"),
    ],
)
def test_bad_copy_source_range(value: str, code: str) -> None:
    with pytest.raises(S3Error) as exc:
        http.parse_copy_source_range(value, SIZE)
    assert exc.value.code == code


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("bucket/key", ("bucket", "key", None)),
        ("/bucket/dir/key%20with%20space", ("bucket", "dir/key with space", None)),
        ("bucket/%C3%BC%2Bplus?versionId=v1", ("bucket", "ü+plus", "v1")),
        ("bucket/a%3Fb", ("bucket", "a?b", None)),
    ],
)
def test_copy_source(value: str, expected: tuple[str, str, str | None]) -> None:
    source = http.parse_copy_source(value)
    assert (source.bucket, source.key, source.version_id) == expected


@pytest.mark.parametrize("value", ["", "bucket", "/bucket/", "/"])
def test_bad_copy_source(value: str) -> None:
    with pytest.raises(S3Error) as exc:
        http.parse_copy_source(value)
    assert exc.value.code == "InvalidArgument"


def test_http_dates() -> None:
    assert http.http_date(MODIFIED) == AT
    assert http.parse_http_date(AT) == MODIFIED.replace(microsecond=0)
    assert http.parse_http_date("Monday, 23-Nov-26 09:00:00 GMT") == MODIFIED.replace(microsecond=0)
    assert http.parse_http_date("Mon Nov 23 09:00:00 2026") == MODIFIED.replace(microsecond=0)
    assert http.parse_http_date("garbage") is None
    assert http.parse_http_date(None) is None
