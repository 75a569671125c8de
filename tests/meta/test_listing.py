"""Listings: prefix, delimiter, markers, pagination, UTF-8 order; checked against an oracle."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from meta_support import bulk_versions

from residency.meta import Database
from residency.meta.errors import InvalidArgument
from residency.meta.models import Bucket, Tenant
from residency.meta.repo import buckets, objects
from residency.meta.repo.keyspace import prefix_end
from residency.meta.repo.objects import Listing

Entry = tuple[str, str]  # ("key" | "prefix", value)


def oracle(
    keys: list[str], prefix: str = "", delimiter: str = "", start_after: str = ""
) -> list[Entry]:
    """S3 listing semantics, written the slow obvious way."""
    out: list[Entry] = []
    for key in sorted(keys):  # code point order == UTF-8 byte order
        if not key.startswith(prefix):
            continue
        i = key.find(delimiter, len(prefix)) if delimiter else -1
        if i >= 0:
            cp = key[: i + len(delimiter)]
            if key > start_after and cp != start_after and ("prefix", cp) not in out:
                out.append(("prefix", cp))
        elif key > start_after:
            out.append(("key", key))
    return out


def entries(page: Listing) -> list[Entry]:
    merged = [("key", o.key) for o in page.objects] + [("prefix", p) for p in page.common_prefixes]
    return sorted(merged, key=lambda e: e[1])


async def paginate(
    db: Database, bucket: Bucket, *, page_size: int, **kw: str
) -> tuple[list[Entry], int]:
    got: list[Entry] = []
    marker = kw.pop("start_after", "")
    for pages in itertools.count(1):
        async with db.session(write=False) as s:
            page = await objects.list_objects(
                s, bucket, start_after=marker, max_keys=page_size, **kw
            )
        assert len(page.objects) + len(page.common_prefixes) <= page_size
        got += entries(page)
        if not page.is_truncated:
            assert page.next_marker is None
            return got, pages
        assert page.next_marker is not None
        assert page.next_marker == got[-1][1]
        marker = page.next_marker
    raise AssertionError("unreachable")


KEYS = [
    "a",
    "a/",
    "a/b",
    "a/b/c",
    "a/b/d",
    "a/c",
    "a/c/d/e",
    "ab",
    "b/x",
    "b/y/z",
    "c",
    "photos/2024/01/x.jpg",
    "photos/2024/02/y.jpg",
    "photos/2025/01/z.jpg",
    "photos/index.html",
    "z",
    "é/1",
    "中文/2",
    "😀",
    "\U0010ffff",
    "ﬀ",
]


@pytest.fixture
async def filled(db: Database, bucket: Bucket) -> Bucket:
    await bulk_versions(db, bucket, KEYS)
    return bucket


async def _list(db: Database, bucket: Bucket, **kw: object) -> Listing:
    async with db.session(write=False) as s:
        return await objects.list_objects(s, bucket, **kw)  # type: ignore[arg-type]


async def test_full_listing_is_in_utf8_byte_order(db: Database, filled: Bucket) -> None:
    page = await _list(db, filled)
    keys = [o.key for o in page.objects]
    assert keys == sorted(KEYS, key=lambda k: k.encode("utf-8"))
    assert not page.is_truncated


@pytest.mark.parametrize(
    ("prefix", "delimiter", "expected"),
    [
        ("", "/", [("key", "a"), ("prefix", "a/"), ("key", "ab"), ("prefix", "b/"), ("key", "c")]),
        (
            "a/",
            "/",
            [
                ("key", "a/"),
                ("key", "a/b"),
                ("prefix", "a/b/"),
                ("key", "a/c"),
                ("prefix", "a/c/"),
            ],
        ),
        (
            "photos/",
            "/",
            [("prefix", "photos/2024/"), ("prefix", "photos/2025/"), ("key", "photos/index.html")],
        ),
        ("photos/2024/", "/", [("prefix", "photos/2024/01/"), ("prefix", "photos/2024/02/")]),
        ("photos/20", "/", [("prefix", "photos/2024/"), ("prefix", "photos/2025/")]),
        ("b", "", [("key", "b/x"), ("key", "b/y/z")]),
        ("a/c/", "d/", [("prefix", "a/c/d/")]),
        ("nothing", "/", []),
    ],
)
async def test_prefix_and_delimiter(
    db: Database, filled: Bucket, prefix: str, delimiter: str, expected: list[Entry]
) -> None:
    page = await _list(db, filled, prefix=prefix, delimiter=delimiter)
    got = entries(page)
    if prefix == "":
        got = [e for e in got if e[1] <= "c"]  # the unicode tail is checked elsewhere
    assert got == expected
    assert entries(page) == oracle(KEYS, prefix, delimiter)


async def test_unicode_prefixes_and_delimiters(db: Database, filled: Bucket) -> None:
    assert entries(await _list(db, filled, prefix="中")) == [("key", "中文/2")]
    assert entries(await _list(db, filled, delimiter="文")) == oracle(KEYS, "", "文")
    assert entries(await _list(db, filled, prefix="\U0010ffff")) == [("key", "\U0010ffff")]
    assert entries(await _list(db, filled, start_after="😀")) == [("key", "\U0010ffff")]


@pytest.mark.parametrize("page_size", [1, 2, 3, 7, 1000])
@pytest.mark.parametrize(
    ("prefix", "delimiter"), [("", ""), ("", "/"), ("a/", "/"), ("photos/", "/"), ("a", "b")]
)
async def test_pagination_equals_the_full_listing(
    db: Database, filled: Bucket, page_size: int, prefix: str, delimiter: str
) -> None:
    got, pages = await paginate(db, filled, page_size=page_size, prefix=prefix, delimiter=delimiter)
    expected = oracle(KEYS, prefix, delimiter)
    assert got == expected
    assert pages == max(1, -(-len(expected) // page_size))


@pytest.mark.parametrize(
    ("start_after", "prefix", "delimiter"),
    [
        ("a/b", "", ""),
        ("a/", "", "/"),  # a common prefix: everything under it is skipped
        ("a/b", "", "/"),  # a key inside a common prefix: the prefix still has later keys
        ("a/b/", "a/", "/"),
        ("0", "photos/", "/"),  # before the prefix: no effect
        ("photos/2024/01/", "photos/", "/"),
        ("photos/2024/", "photos/", "/"),
        ("zz", "", "/"),
        ("\U0010ffff", "", ""),
    ],
)
async def test_start_after(
    db: Database, filled: Bucket, start_after: str, prefix: str, delimiter: str
) -> None:
    page = await _list(db, filled, start_after=start_after, prefix=prefix, delimiter=delimiter)
    assert entries(page) == oracle(KEYS, prefix, delimiter, start_after)


async def test_max_keys_edges(db: Database, filled: Bucket) -> None:
    empty = await _list(db, filled, max_keys=0)
    assert (entries(empty), empty.is_truncated, empty.next_marker) == ([], False, None)
    with pytest.raises(InvalidArgument):
        await _list(db, filled, max_keys=-1)
    one = await _list(db, filled, max_keys=1)
    assert (entries(one), one.is_truncated, one.next_marker) == ([("key", "a")], True, "a")
    # A page that ends exactly at the last entry is not truncated.
    exact = await _list(db, filled, prefix="b", max_keys=2)
    assert (len(exact.objects), exact.is_truncated) == (2, False)


async def test_max_keys_is_capped_at_1000(db: Database, bucket: Bucket) -> None:
    await bulk_versions(db, bucket, [f"k{i:05d}" for i in range(1005)])
    page = await _list(db, bucket, max_keys=5000)
    assert (len(page.objects), page.is_truncated, page.next_marker) == (1000, True, "k00999")


async def test_listing_is_per_bucket(db: Database, tenant: Tenant, filled: Bucket) -> None:
    async with db.session() as s:
        other = await buckets.create_bucket(s, tenant, "other")
    await bulk_versions(db, other, ["a", "only-here"])
    assert entries(await _list(db, other)) == [("key", "a"), ("key", "only-here")]


def test_prefix_end() -> None:
    assert prefix_end("") is None
    assert prefix_end("a") == "b"
    assert prefix_end("a/") == "a0"
    assert prefix_end("a\U0010ffff") == "b"
    assert prefix_end("\U0010ffff") is None
    assert prefix_end("\ud7ff") == "\ue000"


ALPHABET = st.sampled_from(["a", "b", "/", "-", "é", "😀", "\U0010ffff"])
KEY = st.lists(ALPHABET, min_size=1, max_size=5).map("".join)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    keys=st.lists(KEY, min_size=0, max_size=25, unique=True),
    prefix=st.lists(ALPHABET, max_size=2).map("".join),
    delimiter=st.sampled_from(["", "/", "-", "b/", "😀"]),
    start_after=st.one_of(st.just(""), KEY),
    page_size=st.integers(min_value=1, max_value=6),
)
async def test_listing_matches_the_oracle(
    db: Database,
    tenant: Tenant,
    keys: list[str],
    prefix: str,
    delimiter: str,
    start_after: str,
    page_size: int,
) -> None:
    async with db.session() as s:
        bucket = await buckets.create_bucket(s, tenant, f"h-{len(await buckets.list_buckets(s))}")
    await bulk_versions(db, bucket, keys)
    got, _ = await paginate(
        db, bucket, page_size=page_size, prefix=prefix, delimiter=delimiter, start_after=start_after
    )
    assert got == oracle(keys, prefix, delimiter, start_after)
