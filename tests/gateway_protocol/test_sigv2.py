"""SigV2 `Authorization: AWS` header verification against the examples of AWS's S3
documentation ("Signing and authenticating REST requests", signature version 2), an oracle
independent of our code and of botocore's signer."""

from __future__ import annotations

import datetime as dt

import pytest

from residency.gateway import sigv2
from residency.gateway.errors import S3Error
from residency.gateway.sigv4 import RequestParts

AKID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def at(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%a, %d %b %Y %H:%M:%S %z")


def parts(
    method: str, path: str, signature: str, *headers: tuple[str, str], query: str = ""
) -> RequestParts:
    return RequestParts(
        method, path, query, (*headers, ("authorization", f"AWS {AKID}:{signature}"))
    )


def verify(req: RequestParts, now: dt.datetime, bucket: str | None = None) -> None:
    auth = sigv2.parse(req)
    assert auth is not None
    assert not auth.presigned
    assert auth.access_key_id == AKID
    verified = sigv2.verify(auth, req, SECRET, bucket=bucket, now=now)
    assert not verified.presigned
    assert verified.access_key_id == AKID


# (request, virtual-host bucket) as the documentation shows them, each with its signature.
EXAMPLES = [
    (  # Object GET, virtual-hosted: the resource names the bucket, the path does not
        parts(
            "GET",
            "/photos/puppy.jpg",
            "qgk2+6Sv9/oM7G3qLEjTH1a1l1g=",
            ("host", "awsexamplebucket1.us-west-1.s3.amazonaws.com"),
            ("date", "Tue, 27 Mar 2007 19:36:42 +0000"),
        ),
        "awsexamplebucket1",
    ),
    (  # Object PUT: Content-Type is signed, an absent Content-MD5 is an empty line
        parts(
            "PUT",
            "/photos/puppy.jpg",
            "iqRzw+ileNPu1fhspnRs8nOjjIA=",
            ("content-type", "image/jpeg"),
            ("content-length", "94328"),
            ("host", "awsexamplebucket1.s3.us-west-1.amazonaws.com"),
            ("date", "Tue, 27 Mar 2007 21:15:45 +0000"),
        ),
        "awsexamplebucket1",
    ),
    (  # List: the query is not a sub-resource, the resource keeps its trailing slash
        parts(
            "GET",
            "/",
            "m0WP8eCtspQl5Ahe6L1SozdX9YA=",
            ("user-agent", "Mozilla/5.0"),
            ("host", "awsexamplebucket1.s3.us-west-1.amazonaws.com"),
            ("date", "Tue, 27 Mar 2007 19:42:41 +0000"),
            query="prefix=photos&max-keys=50&marker=puppy",
        ),
        "awsexamplebucket1",
    ),
    (  # Delete, path style, with x-amz-date standing for the date (the example's form)
        parts(
            "DELETE",
            "/awsexamplebucket1/photos/puppy.jpg",
            "XbyTlbQdu9Xw5o8P4iMwPktxQd8=",
            ("user-agent", "dotnet"),
            ("host", "s3.us-west-1.amazonaws.com"),
            ("date", "Tue, 27 Mar 2007 21:20:27 +0000"),
            ("x-amz-date", "Tue, 27 Mar 2007 21:20:26 +0000"),
        ),
        None,
    ),
    (  # List all my buckets
        parts(
            "GET",
            "/",
            "qGdzdERIC03wnaRNKh6OqZehG9s=",
            ("host", "s3.us-west-1.amazonaws.com"),
            ("date", "Wed, 28 Mar 2007 01:29:59 +0000"),
        ),
        None,
    ),
]


@pytest.mark.parametrize(("req", "bucket"), EXAMPLES)
def test_aws_documentation_examples(req: RequestParts, bucket: str | None) -> None:
    verify(req, at(req.header("x-amz-date") or req.header("date") or ""), bucket)


def test_x_amz_date_with_an_empty_date_line() -> None:
    """What the documentation's text says (and boto2 and s3cmd sign): with `x-amz-date` the
    date line is empty and `x-amz-date` is among the amz headers."""
    req = parts(
        "DELETE",
        "/awsexamplebucket1/photos/puppy.jpg",
        "Ri1hpB1zpS9pGqR7y8kuNFCl4sE=",  # HMAC-SHA1 of that string to sign, base64
        ("host", "s3.us-west-1.amazonaws.com"),
        ("x-amz-date", "Tue, 27 Mar 2007 21:20:26 +0000"),
    )
    verify(req, at("Tue, 27 Mar 2007 21:20:26 +0000"))


def test_skew_is_measured_from_x_amz_date_then_date() -> None:
    req = EXAMPLES[0][0]
    sent = at("Tue, 27 Mar 2007 19:36:42 +0000")
    verify(req, sent + dt.timedelta(minutes=14), "awsexamplebucket1")
    auth = sigv2.parse(req)
    assert auth is not None
    with pytest.raises(S3Error) as exc:
        sigv2.verify(
            auth, req, SECRET, bucket="awsexamplebucket1", now=sent - dt.timedelta(hours=1)
        )
    assert exc.value.code == "RequestTimeTooSkewed"
    delete = EXAMPLES[3][0]  # Date 21:20:27, x-amz-date 21:20:26: x-amz-date is the time
    auth = sigv2.parse(delete)
    assert auth is not None
    assert auth.request_time == at("Tue, 27 Mar 2007 21:20:26 +0000")


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        (f"AWS {AKID}", "InvalidArgument"),
        (f"AWS {AKID}:", "InvalidArgument"),
        ("AWS :c2lnbmF0dXJl", "InvalidArgument"),
        (f"AWS {AKID}: c2lnbmF0dXJl", "InvalidArgument"),
    ],
)
def test_malformed_headers(authorization: str, code: str) -> None:
    req = RequestParts(
        "GET",
        "/b/k",
        "",
        (("date", "Tue, 27 Mar 2007 19:36:42 +0000"), ("authorization", authorization)),
    )
    with pytest.raises(S3Error) as exc:
        sigv2.parse(req)
    assert exc.value.code == code


@pytest.mark.parametrize("date", [None, "yesterday", "Fri, 31 Dec 9999 23:59:59 -1200"])
def test_a_missing_or_unreadable_date_is_access_denied(date: str | None) -> None:
    headers = (("date", date),) if date is not None else ()
    req = parts("GET", "/b/k", "c2lnbmF0dXJl", *headers)
    with pytest.raises(S3Error) as exc:
        sigv2.parse(req)
    assert exc.value.code == "AccessDenied"
    assert "Date or x-amz-date" in exc.value.message


def test_residency_headers_cannot_be_signed_with_sigv2() -> None:
    """SigV2 signs only `x-amz-*` headers, so the gateway's own are refused, not trusted."""
    req = parts(
        "PUT",
        "/b",
        "c2lnbmF0dXJl",
        ("date", "Tue, 27 Mar 2007 19:36:42 +0000"),
        ("x-residency-default-class", "public"),
    )
    with pytest.raises(S3Error) as exc:
        sigv2.parse(req)
    assert exc.value.code == "AccessDenied"
    assert exc.value.fields["HeadersNotSigned"] == "x-residency-default-class"


def test_a_changed_header_breaks_the_signature() -> None:
    req, bucket = EXAMPLES[1]
    tampered = RequestParts(
        req.method,
        req.raw_path,
        req.query_string,
        tuple((k, "text/plain" if k == "content-type" else v) for k, v in req.headers),
    )
    auth = sigv2.parse(tampered)
    assert auth is not None
    with pytest.raises(S3Error) as exc:
        sigv2.verify(
            auth, tampered, SECRET, bucket=bucket, now=at("Tue, 27 Mar 2007 21:15:45 +0000")
        )
    assert exc.value.code == "SignatureDoesNotMatch"
