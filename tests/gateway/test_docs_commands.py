"""Every command in a ```sh block of README.md and docs/*.md runs, read from the markdown itself,
so an edited doc is what is tested (project rule: the tour never drifts from the code).

Each doc is replayed the way a reader follows it, in a fresh directory of its own: one-shot
commands run in that directory, `residency serve` starts a real server there (a new one
replaces the running one, as a reader stops one server to start the next), S3 clients talk to
the running server with the access key the server printed, and `residency top` runs on a
pseudo-terminal until its live view has refreshed, then gets Ctrl-C. The documented ports
9000 and 9100 become free ones; files a command names (`report.pdf`, `residency.yaml`, a TLS
certificate) are made when missing, and a bucket no earlier command created is created first.

A command exits 0, or N when a comment beside it says `# exit N`. What a command promises
beyond that is asserted below (a server's probes and logs as it starts; the tour's answers
after the replay). A command is not run here only when it is listed: RUN_ELSEWHERE (another
test runs it, in the setting it needs) or CANNOT_RUN (why no test can). A new command in a doc
is therefore run, or this test fails until someone says why not.

It lives with the gateway tests because it starts servers with their helpers (gwserver.py).
"""

from __future__ import annotations

import itertools
import json
import os
import pty
import re
import select
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from gwserver import REGION, Gateway, Server, _free_port, start_server

from test_readme_tour import _first_part as readme_policy_part
from testkit import run_cli, self_signed_cert

REPO = Path(__file__).resolve().parents[2]
DOCS = ["README.md", *sorted(f"docs/{p.name}" for p in (REPO / "docs").glob("*.md"))]

MIGRATION_TOUR = (
    "tests/migrate/test_tour.py runs the tour's migration (a legacy bucket at Alibaba to adopt, "
    "users.csv, the TikTok policy), the same commands as README.md's"
)
MIGRATION_COMMANDS = [
    "export RESIDENCY_POLICY=examples/tiktok-2022.yaml",
    "residency adopt alibaba-ap-southeast-1 --bucket legacy --tenant bytedance --lookup users.csv",
    "residency plan -o plan.json",
    "residency migrate plan.json",
    "residency verify --deep",
    "residency scan alibaba-ap-southeast-1",
]
POLICY_CASES = (
    "tests/policy/test_policy_cases.py runs every command of docs/policy-testing.md with the "
    "case files the doc shows (and fails when the doc's commands change)"
)

# Commands another test runs, in the setting they need. README.md's catalog and policy part
# (everything before "# Use the gateway") runs in tests/test_readme_tour.py: see `elsewhere`.
RUN_ELSEWHERE: dict[str, dict[str, str]] = {
    "README.md": {
        **dict.fromkeys(MIGRATION_COMMANDS, MIGRATION_TOUR),
        "residency policy diff examples/tiktok-2022.yaml examples/tiktok-usds-2026.yaml": (
            MIGRATION_TOUR
        ),
    },
    "docs/migration.md": {
        **dict.fromkeys(MIGRATION_COMMANDS, MIGRATION_TOUR),
        "residency report -o report.html": MIGRATION_TOUR,
    },
    "docs/policy-testing.md": {
        "residency policy test preset:us-doj-bulk-data "
        "src/residency/policy/cases/us-doj-bulk-data.yaml": POLICY_CASES,
        "residency policy test acme-policy.yaml gdpr-cases.yaml": POLICY_CASES,
        "residency policy test preset:eu-gdpr gdpr-cases.yaml --json": POLICY_CASES,
    },
}

RAY_ENGINE = (
    "tests/migrate/test_ray_engine.py runs `migrate --engine ray` on a Ray head it starts, "
    "joined with --ray-address"
)

# Commands no test can run, and why.
CANNOT_RUN: dict[str, dict[str, str]] = {
    "README.md": {
        "python3 -m pip install .": "installs into the Python running the tests (already done)",
        "./scripts/test.sh": "the whole suite: lint, type check and every test, this one too",
        "residency migrate plan.json --engine ray --ray-address auto": (
            f"needs the Ray cluster this machine is part of; {RAY_ENGINE}"
        ),
    },
    "docs/migration.md": {
        "pip install 'residency[ray]'": "installs into the Python running the tests",
        "residency migrate plan.jsonl --engine ray": (
            f"starts a local Ray instance of its own for one run; {RAY_ENGINE}"
        ),
        "residency migrate plan.jsonl --engine ray --ray-address auto": (
            f"needs the Ray cluster this machine is part of; {RAY_ENGINE}"
        ),
        "residency migrate plan.jsonl --engine ray --ray-address 10.0.0.5:6379 --ray-tasks 64": (
            f"needs a Ray cluster at 10.0.0.5; {RAY_ENGINE}"
        ),
    },
    "docs/gateway.md": {
        "residency serve --host 0.0.0.0 --admin-port 9100 --admin-host 10.0.0.5": (
            "binds the admin server to 10.0.0.5, a LAN address this machine does not have; "
            "tests/gateway/test_operability.py runs --admin-host and --host 0.0.0.0"
        ),
    },
}

S3_CLIENTS = ("aws", "s5cmd", "rclone")
# The embedded default's locations in the US (src/residency/defaults.py).
US_LOCATIONS = {"aws-us-east-1", "oci-us-ashburn-1"}


# -- the commands, as the markdown shows them ------------------------------------------------


@dataclass(frozen=True)
class DocCommand:
    doc: str
    line: int
    text: str  # as written, without its comment, continuation lines joined
    expect: int = 0  # exit code: 0, or N from a `# exit N` comment beside it
    times: int = 1  # 2 when the comment beside it says `# twice`

    @property
    def args(self) -> list[str]:
        """The words of the command (of its first stage, for a pipeline)."""
        return shlex.split(self.text.split(" | ")[0])

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}: {self.text}"


def split_comment(line: str) -> tuple[str, str]:
    """(command, comment) of a shell line: `#` after a space and outside quotes starts it."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].strip(), line[i + 1 :].strip()
    return line.strip(), ""


def doc_commands(doc: str) -> list[DocCommand]:
    """Every command of every ```sh block of `doc`, in order. `a && b` is two commands, and so
    is `a   # or: b`; `a   # twice` is run twice."""
    text = (REPO / doc).read_text()
    found = []
    for block in re.finditer(r"^```sh\n(.*?)^```", text, re.S | re.M):
        lines = block.group(1).splitlines()
        first = text.count("\n", 0, block.start(1)) + 1
        i = 0
        while i < len(lines):
            number, logical = first + i, lines[i]
            while logical.endswith("\\") and i + 1 < len(lines):
                i += 1
                logical = logical[:-1] + " " + lines[i].strip()
            i += 1
            command, comment = split_comment(logical)
            code = re.match(r"exit (\d+)", comment)
            times = 2 if comment.startswith("twice") else 1
            alternative = re.match(r"or:\s*(\S.*)", comment)
            parts = [c for c in command.split(" && ") if c.strip()]
            parts += [alternative.group(1)] if alternative else []
            for part in parts:
                written = " ".join(part.split())
                expect = int(code.group(1)) if code else 0
                found.append(DocCommand(doc, number, written, expect, times))
    return found


def elsewhere(command: DocCommand) -> str | None:
    """Why `command` is not run here, or None when it is."""
    if command.doc == "README.md" and command.args[1:] in readme_policy_part():
        return "tests/test_readme_tour.py runs the tour's catalog and policy part"
    for listing in (RUN_ELSEWHERE, CANNOT_RUN):
        if command.text in listing.get(command.doc, {}):
            return listing[command.doc][command.text]
    return None


# -- a reader following a doc ----------------------------------------------------------------


@dataclass
class Ran:
    """What a command did: its exit code and output (for `top`, the screen it drew)."""

    code: int
    stdout: str
    stderr: str = ""


@dataclass
class Served:
    """A `residency serve` that started and answered; `readyz` is its admin server's answer."""

    server: Server
    request_id: str
    readyz: dict[str, Any] | None = None
    exit_code: int | None = None  # once stopped


@dataclass
class Replay:
    """One doc's commands, run in order in `root` as a reader would run them."""

    doc: str
    root: Path
    admin_port: int
    env: dict[str, str] = field(default_factory=dict)
    keys: tuple[str, str] | None = None
    served: Served | None = None
    buckets: set[str] = field(default_factory=set)
    results: dict[str, Ran | Served] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def run_all(self) -> None:
        for command in doc_commands(self.doc):
            reason = elsewhere(command)
            if reason is not None:
                self.skipped[command.text] = reason
                continue
            for _ in range(command.times):
                self.results[command.text] = self.run(command)

    def run(self, command: DocCommand) -> Ran | Served:
        args = command.args
        if " | " in command.text or args[0] not in ("residency", "export", *S3_CLIENTS):
            pytest.fail(
                f"{command}: this test does not know how to run it; teach it, or list it in "
                "RUN_ELSEWHERE or CANNOT_RUN with the reason"
            )
        if args[0] == "export":
            name, _, value = args[1].partition("=")
            self.env[name] = value
            return Ran(0, "")
        if args[:2] == ["residency", "serve"]:
            return self.serve(args[2:])
        self.make_inputs(args)
        if args[:2] == ["residency", "top"] and "--once" not in args:
            ran = self.watch(args[1:])
        elif args[0] == "residency":
            r = run_cli(*self.ports(args[1:]), cwd=self.root, env=self.env)
            ran = Ran(r.code, r.stdout, r.stderr)
        else:
            ran = self.s3_client(args)
        assert ran.code == command.expect, (str(command), ran.stdout, ran.stderr)
        assert "Traceback" not in ran.stderr, (str(command), ran.stderr)
        return ran

    def ports(self, args: list[str]) -> list[str]:
        """The documented ports made this replay's: 9000 the running server's, 9100 the
        admin port (a `serve --port 9000` is dropped instead: start_server picks the port)."""
        s3_port = self.served.server.endpoint.rsplit(":", 1)[1] if self.served else "9000"
        admin = str(self.admin_port)

        def swap(arg: str) -> str:
            if arg == "9100":
                return admin
            return re.sub(r":9100\b", f":{admin}", re.sub(r":9000\b", f":{s3_port}", arg))

        return [swap(a) for a in args]

    # -- residency serve and top -------------------------------------------------------

    def serve(self, args: list[str]) -> Served:
        self.make_inputs(args)
        self.stop()
        if "--port" in args:  # the documented port: start_server picks a free one
            at = args.index("--port")
            args = args[:at] + args[at + 2 :]
        tls = "--tls-cert" in args
        server = start_server(
            self.ports(args), self.root, env=self.env, scheme="https" if tls else "http"
        )
        self.served = served = Served(server, request_id="")
        banner = server.stdout.read_text()
        key = re.search(r"access key id:\s+(\S+)\s+secret access key:\s+(\S+)", banner)
        if key:
            self.keys = (key.group(1), key.group(2))
        check_serving(served, args, banner)
        return served

    def stop(self) -> None:
        if self.served is not None:
            self.served.server.stop()
            self.served.exit_code = self.served.server.proc.returncode
            self.served = None

    def watch(self, args: list[str]) -> Ran:
        """`residency top` on a terminal until the view has refreshed once, then Ctrl-C."""
        code, screen = run_in_terminal(
            self.ports(args), self.root, until=lambda s: "rates: last" in s
        )
        return Ran(code, screen)

    # -- S3 clients ------------------------------------------------------------------

    def gateway(self) -> Gateway:
        """The running server as the gateway tests' helpers know it (started if none is)."""
        if self.served is None:
            self.results["residency serve"] = self.serve([])
        assert self.served is not None
        assert self.keys is not None, "no `residency serve` printed an access key"
        return Gateway(
            endpoint=self.served.server.endpoint,
            access_key=self.keys[0],
            secret_key=self.keys[1],
            region=REGION,
            data_dir=self.root / "residency-data",
            config=self.root / "residency.yaml",
            server=self.served.server,
            moto_bucket="",
        )

    def s3_client(self, args: list[str]) -> Ran:
        gateway = self.gateway()
        for bucket in bucket_names(args):
            if bucket not in self.buckets and not creates_bucket(args):
                gateway.s3().create_bucket(Bucket=bucket)
            self.buckets.add(bucket)
        if subcommand(args) in (["aws", "s3", "rb"], ["aws", "s3api", "delete-bucket"]):
            self.buckets -= set(bucket_names(args))
        env = {**gateway.env(), "AWS_MAX_ATTEMPTS": "1", **self.env}
        proc = subprocess.run(
            self.ports(args),
            cwd=self.root,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        return Ran(proc.returncode, proc.stdout, proc.stderr)

    def make_inputs(self, args: list[str]) -> None:
        """Files the command reads that a reader of the doc would have."""
        for flag, path in itertools.pairwise(args):
            target = self.root / path
            if target.exists():
                continue
            if flag in ("--config", "-c"):
                # The embedded default's locations and data dir, with the admin port that
                # `residency top --config` reads.
                target.write_text(f"admin_port: {self.admin_port}\n")
            elif flag == "--tls-cert":
                cert, key = self_signed_cert(self.root)
                cert.rename(target)
                key.rename(self.root / args[args.index("--tls-key") + 1])
            elif flag == "--body":
                target.write_bytes(b"the body the doc sends\n")
        words = subcommand(args, 4)
        if words[:3] in (["aws", "s3", "cp"], ["aws", "s3", "mv"]) and len(words) == 4:
            source = self.root / words[3]
            if "://" in words[3] or words[3] == "-":
                return
            if not source.exists():
                source.write_bytes(b"%PDF-1.4 a file the doc has the reader upload\n")


def bucket_names(args: list[str]) -> list[str]:
    names = [a.removeprefix("s3://").split("/")[0] for a in args if a.startswith("s3://")]
    names += [b for flag, b in itertools.pairwise(args) if flag == "--bucket"]
    return [n for n in names if n]


def creates_bucket(args: list[str]) -> bool:
    return subcommand(args) in (["aws", "s3", "mb"], ["aws", "s3api", "create-bucket"])


def subcommand(args: list[str], n: int = 3) -> list[str]:
    """The first `n` words of an `aws` command, its global `--endpoint-url URL` left out."""
    if "--endpoint-url" in args:
        at = args.index("--endpoint-url")
        args = args[:at] + args[at + 2 :]
    return args[:n]


def check_serving(served: Served, args: list[str], banner: str) -> None:
    """What a started `residency serve ARGS` promises. It answers S3: an anonymous request
    gets S3's AccessDenied with a request id. With an admin port (a flag or the config), the
    banner names it and /livez, /readyz (every worker ready, --workers of them) and /metrics
    (that request counted) answer. With --log-format json, every log line is a JSON object
    and the request's line carries its id."""
    server = served.server
    anonymous = httpx.get(f"{server.endpoint}/", verify=False, timeout=10)
    assert anonymous.status_code == 403, anonymous.text
    assert "<Code>AccessDenied</Code>" in anonymous.text
    served.request_id = anonymous.headers["x-amz-request-id"]
    workers = int(args[args.index("--workers") + 1]) if "--workers" in args else 1
    admin = re.search(r"Admin: (http://\S+)/metrics", banner)
    if admin is not None:
        url = admin.group(1)
        assert httpx.get(f"{url}/livez", timeout=10).json()["alive"] is True
        served.readyz = wait_for(lambda: ready(url), what=f"{url}/readyz to say ready")
        assert served.readyz["workers"] == served.readyz["workers_ready"] == workers
        wait_for(
            lambda: 'operation="ListBuckets",status="403"' in httpx.get(f"{url}/metrics").text,
            what="/metrics to count the anonymous request",
        )
    else:
        assert "--admin-port" not in args

        def started() -> bool:  # granian's own lines, on stdout in the text log format
            logs = server.stdout.read_text() + server.stderr.read_text()
            return f"Started worker-{workers}" in logs

        wait_for(started, what=f"worker {workers} to start")
    if "--log-format" in args and args[args.index("--log-format") + 1] == "json":

        def request_logged() -> bool:
            whole_lines = server.stderr.read_text().split("\n")[:-1]
            records = [json.loads(line) for line in whole_lines]  # each one JSON object
            return any(r.get("request_id") == served.request_id for r in records)

        wait_for(request_logged, what="the JSON log line of the request")


def ready(url: str) -> dict[str, Any] | None:
    response = httpx.get(f"{url}/readyz", timeout=10)
    return response.json() if response.status_code == 200 else None


def wait_for(check: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")


def run_in_terminal(
    args: list[str], cwd: Path, until: Callable[[str], bool], timeout: float = 60
) -> tuple[int, str]:
    """Run `residency ARGS` on a pseudo-terminal until its screen shows what `until` looks
    for, then press Ctrl-C. Returns its exit code and what it drew (escape codes removed)."""
    main, tty = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "residency", *args],
        cwd=cwd,
        stdin=tty,
        stdout=tty,
        stderr=tty,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
    )
    os.close(tty)
    drawn = b""

    def read(wait: float) -> bool:
        nonlocal drawn
        if not select.select([main], [], [], wait)[0]:
            return False
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the terminal's other end is closed
            return False
        drawn += chunk
        return bool(chunk)

    try:
        deadline = time.monotonic() + timeout
        while not until(ANSI.sub("", drawn.decode("utf-8", "replace"))):
            if proc.poll() is not None or time.monotonic() > deadline:
                break
            read(0.2)
        proc.send_signal(signal.SIGINT)
        code = proc.wait(15)
        while read(0.2):
            pass
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(main)
    return code, ANSI.sub("", drawn.decode("utf-8", "replace"))


# -- the tests -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Replay]]:
    """`replay(doc)`: that doc replayed (once per module), its servers stopped at the end."""
    done: dict[str, Replay] = {}
    failed: set[str] = set()

    def get(doc: str) -> Replay:
        if doc in failed:
            pytest.fail(f"the replay of {doc} failed (see the first test that replayed it)")
        if doc not in done:
            name = doc.replace("/", "-").removesuffix(".md")
            done[doc] = Replay(doc, tmp_path_factory.mktemp(name), _free_port())
            try:
                done[doc].run_all()
            except BaseException:
                failed.add(doc)
                done.pop(doc).stop()
                raise
        return done[doc]

    with pytest.MonkeyPatch.context() as mp:
        for name in os.environ:  # a reader's shell: no residency settings from ours
            if name.startswith("RESIDENCY_"):
                mp.delenv(name)
        try:
            yield get
        finally:
            for done_replay in done.values():
                done_replay.stop()


@pytest.mark.parametrize("doc", DOCS)
def test_every_command_of_the_doc_runs_or_says_why_not(
    doc: str, replay: Callable[[str], Replay]
) -> None:
    done = replay(doc)
    for command in doc_commands(doc):
        assert command.text in done.results or command.text in done.skipped, str(command)
    for served in done.results.values():
        if isinstance(served, Served) and served.exit_code is not None:
            assert served.exit_code == 0, f"{served.server.endpoint} stopped with an error"


def test_what_is_not_run_here_is_still_in_the_docs() -> None:
    """A listed command that left its doc is a stale entry (the doc changed: run the new one)."""
    for listing in (RUN_ELSEWHERE, CANNOT_RUN):
        for doc, commands in listing.items():
            shown = {c.text for c in doc_commands(doc)}
            assert set(commands) <= shown, (doc, set(commands) - shown)


def test_the_extraction_reads_what_a_reader_reads() -> None:
    commands = {c.text: c for c in doc_commands("docs/gateway.md")}
    assert "residency top --config residency.yaml" in commands  # from `# or: ...`
    readme = {c.text: c for c in doc_commands("README.md")}
    assert {"python3 -m pip install .", "residency serve"} <= set(readme)  # `a && b`
    explain = next(c for c in readme.values() if c.text.startswith("residency access explain"))
    assert explain.text.endswith("--resource app-data/report.pdf")  # continuation joined
    assert explain.expect == 1
    assert len(readme) > 30


# -- what the README tour promises beyond exit codes -----------------------------------------


def test_the_tour_writes_us_health_data_to_a_us_location(replay: Callable[[str], Replay]) -> None:
    done = replay("README.md")
    head = next(r for t, r in done.results.items() if "s3api head-object" in t)
    assert isinstance(head, Ran)
    assert json.loads(head.stdout)["Metadata"] == {
        "residency-class": "personal.health",
        "residency-subject": "US",
    }
    headers = done.gateway().s3().head_object(Bucket="app-data", Key="report.pdf")
    headers = headers["ResponseMetadata"]["HTTPHeaders"]
    assert set(headers["x-residency-locations"].split(",")) <= US_LOCATIONS
    assert "doj-bulk-sensitive" in headers["x-residency-rule"]


def test_the_tour_operates_the_server(replay: Callable[[str], Replay]) -> None:
    """The checks of check_serving held for `serve --admin-port --log-format json` (they run
    as it starts); `top` showed the server ready and the request it answered, and refreshed."""
    done = replay("README.md")
    served = done.results["residency serve --admin-port 9100 --log-format json"]
    assert isinstance(served, Served)
    assert served.readyz is not None
    assert served.readyz["ready"] is True
    top = done.results["residency top --url http://127.0.0.1:9100"]
    assert isinstance(top, Ran)
    assert f"residency top http://127.0.0.1:{done.admin_port}  READY" in top.stdout
    assert "rates: since start" in top.stdout  # the first view
    assert re.search(r"rates: last [\d.]+ ?s", top.stdout), top.stdout  # ...and the refresh
    assert re.search(r"ListBuckets\s+│\s+[1-9]", top.stdout), top.stdout


def test_the_tour_governs_and_proves(replay: Callable[[str], Replay]) -> None:
    done = replay("README.md")
    out = {text: r.stdout for text, r in done.results.items() if isinstance(r, Ran)}
    assert "Created tenant acme." in out["residency tenant create acme"]
    assert "access key id:" in out["residency key create --tenant acme"]
    principal = out["residency principal set acme/analyst --country CN --covered-person"]
    assert re.search(r"acme/analyst\s+│\s+CN\s+│\s+true", principal)
    explain = next(o for t, o in out.items() if t.startswith("residency access explain"))
    assert explain.startswith("DENY  ReadObject on object app-data/report.pdf by acme/analyst")
    assert "doj-" in explain  # a 28 CFR 202 rule decided it
    assert "audit log intact" in out["residency audit verify"]
    # The first server (the quick start's) signed the chain head when it stopped.
    assert "No checkpoints yet" not in out["residency audit checkpoints"]
    assert re.search(r"^\s+\d+\s+\d{4}-\d\d-\d\dT", out["residency audit checkpoints"], re.M)
    assert "0 out of compliance" in out["residency report -o report.html"]
    report = (done.root / "report.html").read_text()
    assert report.lower().startswith("<!doctype html>")
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=\"https?:", report)


def test_the_gateway_doc_servers_run_as_documented(replay: Callable[[str], Replay]) -> None:
    """Beyond check_serving: TLS is served as HTTPS, `--workers 4` is four workers, and
    `top --config` finds the admin server in residency.yaml and shows all four."""
    done = replay("docs/gateway.md")
    tls = done.results["residency serve --tls-cert cert.pem --tls-key key.pem"]
    assert isinstance(tls, Served)
    assert tls.server.endpoint.startswith("https://")
    for text in (
        "residency serve --config residency.yaml --port 9000 --workers 4",
        "residency serve --config residency.yaml --workers 4 --admin-port 9100 --log-format json",
    ):
        served = done.results[text]
        assert isinstance(served, Served)
        assert served.readyz is not None
        assert served.readyz["workers_ready"] == 4
    top = done.results["residency top --config residency.yaml"]
    assert isinstance(top, Ran)
    assert f"residency top http://127.0.0.1:{done.admin_port}  READY  workers 4/4" in top.stdout


def test_the_versioning_example_keeps_both_versions(replay: Callable[[str], Replay]) -> None:
    done = replay("docs/gateway.md")
    listing = done.results[
        "aws --endpoint-url http://127.0.0.1:9000 s3api list-object-versions --bucket versioned"
    ]
    assert isinstance(listing, Ran)
    versions = json.loads(listing.stdout)["Versions"]
    assert [v["Key"] for v in versions] == ["notes.txt", "notes.txt"]
    assert [v["IsLatest"] for v in versions] == [True, False]
