"""S3-compatible gateway.

Protocol layer (pure: no database, no storage), used by the app and its handlers:

- `errors`   — `S3Error` and one constructor per S3 error code (`errors.no_such_key(key)`).
- `xml`      — response documents (listings, multipart, delete, tagging, `<Error>`) and safe
               parsers for request bodies (CreateBucketConfiguration, CompleteMultipartUpload,
               Delete, Tagging).
- `sigv4`    — AWS Signature V4 (header and presigned): `parse` then `verify`, or
               `authenticate` with a secret lookup callback.
- `chunked`  — streaming decoder for `aws-chunked` bodies (signed chunks, trailers).
- `checksum` — Content-MD5, x-amz-content-sha256 and x-amz-checksum-* verification while the
               body streams: `verified_body(request.stream(), req, auth)`.
- `http`     — Range, conditional requests (If-*, x-amz-copy-source-if-*), HTTP dates.
"""
