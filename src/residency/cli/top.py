"""`residency top`: a live view of a running gateway's counters (its admin server)."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from residency.cli.common import cli_settings
from residency.cli.output import console, fail


def top(
    url: str | None = typer.Option(
        None,
        "--url",
        help="The admin server of `residency serve --admin-port`, e.g. http://127.0.0.1:9100 "
        "(default: admin_host and admin_port from the config).",
    ),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="residency.yaml to take the admin address from."
    ),
    interval: float = typer.Option(
        2.0, "--interval", "-n", min=0.2, help="Seconds between refreshes."
    ),
    once: bool = typer.Option(
        False, "--once", help="Print one view (averages since start-up) and exit."
    ),
) -> None:
    """Watch requests, latency, bytes, refusals, threshold hits and migrations live."""
    from rich.live import Live

    from residency.ops.top import ScrapeError, render, scrape

    if url is None:
        settings = cli_settings(config)
        if settings.admin_port is None:
            fail(
                "no admin server configured: pass --url, or set admin_port "
                "(`residency serve --admin-port PORT`)"
            )
        from residency.cli.serve import admin_url

        url = admin_url(settings)
    url = url.rstrip("/")
    try:
        first = scrape(url)
    except ScrapeError as exc:
        fail(str(exc))
    if once:
        console.print(render(url, first))
        return
    previous, current = None, first
    try:
        with Live(render(url, current), console=console, auto_refresh=False) as live:
            while True:
                time.sleep(interval)
                try:
                    previous, current = current, scrape(url)
                except ScrapeError as exc:  # the server restarts: say so, keep trying
                    live.update(f"[red]{exc}[/] (retrying every {interval:g} s)", refresh=True)
                    continue
                live.update(render(url, current, previous), refresh=True)
    except KeyboardInterrupt:
        pass


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("top")(top)
