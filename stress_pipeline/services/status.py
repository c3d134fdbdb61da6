"""One view of both services, embedded or external, for the CLI and for diagnostics.

Operators ask one question — "are the database and the hot-state store usable, and where are
they?" — whatever mode each service is in, so external servers are pinged and embedded ones are
checked through their recorded pid, and both come out as rows of the same shape.
"""

from __future__ import annotations

from typing import Any

from stress_pipeline.services import embedded
from stress_pipeline.services.connections import check_postgres, check_redis
from stress_pipeline.services.errors import ServiceUnavailableError
from stress_pipeline.services.urls import mask_url
from stress_pipeline.settings import Settings

COLUMNS = ("service", "mode", "running", "pid", "url", "message")
_CHECKS = {embedded.POSTGRES: check_postgres, embedded.REDIS: check_redis}


def service_status(settings: Settings, *, timeout: float = 2.0) -> list[dict[str, Any]]:
    """One row per service: ``name``, ``mode`` (embedded|external), ``url`` (masked), ``pid``
    (embedded only, else None), ``running`` (True when the server answers) and ``message``; then,
    once a live-state run with planned outages has started them, a row per embedded server of that
    run's own pair (named "... (planned outages)").

    Starts nothing and creates no files.
    """
    external = {embedded.POSTGRES: settings.postgres_url, embedded.REDIS: settings.redis_url}
    embedded_rows = {}
    if None in external.values():
        embedded_rows = {row.name: row for row in embedded.status(settings, timeout=timeout)}
    rows = _rows(external, embedded_rows, timeout)
    # The embedded pair live-state runs with planned outages use and stop, once one has started it.
    outages = settings.for_planned_outages()
    if None in external.values() and embedded.ServiceLayout.from_settings(outages).state_file.exists():
        found = {row.name: row for row in embedded.status(outages, timeout=timeout)}
        for row in _rows({name: None for name in external if external[name] is None}, found, timeout):
            rows.append({**row, "name": f"{row['name']} (planned outages)"})
    return rows


def _rows(
    external: dict[str, str | None], embedded_rows: dict[str, embedded.ServerStatus], timeout: float
) -> list[dict[str, Any]]:
    """A row per server named in ``external``: pinged at its URL, or as ``embedded_rows`` found it."""
    rows = []
    for name in (name for name in embedded.SERVICE_NAMES if name in external):
        display = embedded.DISPLAY_NAMES[name]
        url = external[name]
        if url is not None:
            try:
                _CHECKS[name](url, timeout)
            except ServiceUnavailableError as err:
                running, message = False, f"unreachable: {err.cause}"
            else:
                running, message = True, "reachable"
            rows.append(_row(display, "external", mask_url(url), None, running, message))
        else:
            found = embedded_rows[name]
            record = found.record
            rows.append(
                _row(
                    display,
                    "embedded",
                    mask_url(record.url) if record else None,
                    record.pid if record else None,
                    found.running,
                    found.message,
                )
            )
    return rows


def _row(
    name: str, mode: str, url: str | None, pid: int | None, running: bool, message: str
) -> dict[str, Any]:
    return {"name": name, "mode": mode, "url": url, "pid": pid, "running": running, "message": message}


def format_status_table(rows: list[dict[str, Any]]) -> str:
    """Plain-text table of :func:`service_status` rows, one line per service, header first."""
    header = [column.upper() for column in COLUMNS]
    lines = [header]
    for row in rows:
        lines.append(
            [
                str(row.get("name", "")),
                str(row.get("mode", "")),
                "yes" if row.get("running") else "no",
                "-" if row.get("pid") is None else str(row["pid"]),
                row.get("url") or "-",
                str(row.get("message", "")),
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]
    rendered = []
    for index, line in enumerate(lines):
        cells = [cell.ljust(width) for cell, width in zip(line, widths, strict=True)]
        rendered.append("  ".join(cells).rstrip())
        if index == 0:
            rendered.append("  ".join("-" * width for width in widths))
    return "\n".join(rendered)
