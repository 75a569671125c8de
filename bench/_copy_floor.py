"""The least a Python copier can do fs -> fs: walk, read, SHA-256, write, one sync at the end.

`bench/migrate.py` times it (as a fresh process, like the CLIs it is compared with) next to
residency and rclone: the ceiling for a CPython tool on this machine, with no metadata, no
journal, no policy and no audit. Threads, not asyncio: local file I/O releases the GIL.

    python bench/_copy_floor.py SRC DST [--threads N]
"""

from __future__ import annotations

import argparse
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor


def copy(src: str, dst: str, rel: str) -> int:
    with open(os.path.join(src, rel), "rb") as f:
        data = f.read()
    hashlib.sha256(data).digest()
    out = os.path.join(dst, rel)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "wb") as f:
        f.write(data)
    return len(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src")
    parser.add_argument("dst")
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    rels = [
        os.path.relpath(os.path.join(root, name), args.src)
        for root, _, names in os.walk(args.src)
        for name in names
    ]
    with ThreadPoolExecutor(args.threads) as pool:
        total = sum(pool.map(lambda rel: copy(args.src, args.dst, rel), rels))
    os.sync()
    print(f"{len(rels)} files, {total} bytes")


if __name__ == "__main__":
    main()
