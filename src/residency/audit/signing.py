"""Ed25519 keys that sign checkpoints, so a verifier holding only the public half can prove a log
was neither rewritten nor cut short since a checkpoint was taken.

The private key lives beside the data (``<data_dir>/audit-signing-key.pem``, PKCS#8 PEM, mode
0600) and is created on first use; ship its public half (`public_key_pem`) to whoever audits.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from datetime import datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from residency.audit.canonical import canonical_json, format_ts
from residency.audit.errors import SigningKeyError

KEY_FILENAME = "audit-signing-key.pem"
# Domain separation: a checkpoint signature can never be replayed as any other signed message.
CHECKPOINT_CONTEXT = b"residency audit checkpoint v1\n"


def key_path(data_dir: Path) -> Path:
    return data_dir / KEY_FILENAME


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short, stable name for a key: the first 16 hex digits of sha256(raw public key)."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_key_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def checkpoint_message(seq: int, chain_hash: str, ts: datetime) -> bytes:
    """The exact bytes a checkpoint signature covers."""
    return CHECKPOINT_CONTEXT + canonical_json(
        {"seq": seq, "hash": chain_hash, "ts": format_ts(ts)}, path="checkpoint"
    )


def signature_valid(public_key: Ed25519PublicKey, signature_hex: str, message: bytes) -> bool:
    try:
        public_key.verify(bytes.fromhex(signature_hex), message)
    except (InvalidSignature, ValueError):
        return False
    return True


def load_signing_key(data_dir: Path) -> Ed25519PrivateKey | None:
    """The signing key under `data_dir`, or None if none was created yet."""
    path = key_path(data_dir)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SigningKeyError(f"{path}: cannot read audit signing key ({exc.strerror})") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SigningKeyError(
            f"{path}: audit signing key is accessible to other users "
            f"(mode {stat.S_IMODE(mode):04o}); run: chmod 600 {path}"
        )
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError, OSError) as exc:
        raise SigningKeyError(f"{path}: not a readable PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path}: not an Ed25519 key")
    return key


def load_or_create_signing_key(data_dir: Path) -> Ed25519PrivateKey:
    """The signing key under `data_dir`, created (0600) if missing.

    Safe against several processes starting at once: the key is written to a private temporary
    file and hard-linked into place, which fails if another process won; then theirs is used.
    """
    key = load_signing_key(data_dir)
    if key is not None:
        return key
    new_key = Ed25519PrivateKey.generate()
    pem = new_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path = key_path(data_dir)
    tmp = path.with_name(f".{KEY_FILENAME}.{os.getpid()}.tmp")
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
                fh.flush()
                os.fsync(fh.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as exc:
        raise SigningKeyError(
            f"{path}: cannot create the audit signing key ({exc.strerror})"
        ) from None
    key = load_signing_key(data_dir)
    if key is None:  # pragma: no cover - the link above or a concurrent one created it
        raise SigningKeyError(f"{path}: could not create the audit signing key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM file (a private key file yields its public half)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"{path}: cannot read public key ({exc.strerror})") from None
    try:
        if b"PRIVATE KEY" in data:
            private = serialization.load_pem_private_key(data, password=None)
            if not isinstance(private, Ed25519PrivateKey):
                raise SigningKeyError(f"{path}: not an Ed25519 key")
            return private.public_key()
        public = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"{path}: not a PEM Ed25519 public key ({exc})") from None
    if not isinstance(public, Ed25519PublicKey):
        raise SigningKeyError(f"{path}: not an Ed25519 public key")
    return public
