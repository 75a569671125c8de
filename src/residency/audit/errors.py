"""Errors of the audit layer; each message is one readable line for the CLI."""

from __future__ import annotations


class AuditError(Exception):
    """The audit log cannot do what was asked (missing chain head, bad key file, bad entry)."""


class SigningKeyError(AuditError):
    """The checkpoint signing key or a public key file is missing, unreadable or unsafe."""
