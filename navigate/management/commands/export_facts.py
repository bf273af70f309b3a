"""manage.py export_facts <metric> --format parquet|csv [--since DATE] [--output PATH]
                                                           [--storage [KEY]]

Streams a metric's facts to a file (or standard output with `--output -`), or to Atlas's
object storage with `--storage` (default key exports/facts/<metric>/<metric>-<time>.<format>),
in bounded memory, with the columns of its reporting view: what a BI reader may see, no person's
clearance (navigate.exports says why). Audited.
"""

import sys
from datetime import date
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from navigate.exports import (
    CHUNK_ROWS,
    FORMATS,
    ExportError,
    export_facts,
    export_facts_to_storage,
    metric_by_slug,
)


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"--since {text!r} is not a date as YYYY-MM-DD") from None


class Command(BaseCommand):
    help = "Export a metric's facts as Parquet or CSV, typed, at the reporting view."

    def add_arguments(self, parser):
        parser.add_argument("metric", help="the metric's slug")
        parser.add_argument("--format", choices=FORMATS, default="parquet", dest="fmt")
        parser.add_argument("--since", help="only periods starting on or after YYYY-MM-DD")
        parser.add_argument(
            "--output", help="file to write ('-': standard output); default <metric>.<format>"
        )
        parser.add_argument(
            "--storage",
            nargs="?",
            const="",
            default=None,
            metavar="KEY",
            help="write to object storage (S3 when configured) instead of a file",
        )
        parser.add_argument("--chunk-rows", type=int, default=CHUNK_ROWS, help=f"{CHUNK_ROWS}")

    def handle(self, *args, metric, fmt, since=None, output=None, chunk_rows=CHUNK_ROWS, **opts):
        since_date = _date(since) if since else None
        if chunk_rows < 1:
            raise CommandError("--chunk-rows must be at least 1")
        try:
            definition = metric_by_slug(metric)
        except ExportError as error:
            raise CommandError(str(error)) from error
        storage = opts.get("storage")
        if storage is not None:
            if output:
                raise CommandError("choose --output or --storage, not both")
            try:
                result, key = export_facts_to_storage(
                    metric=definition,
                    fmt=fmt,
                    key=storage or None,
                    since=since_date,
                    chunk_rows=chunk_rows,
                )
            except ExportError as error:
                raise CommandError(str(error)) from error
            self.stdout.write(f"{result.rows} facts of {result.metric} stored as {key}.")
            return
        target = output or f"{definition.slug}.{fmt}"
        binary = fmt == "parquet"
        try:
            if target == "-":
                stream = sys.stdout.buffer if binary else self.stdout
                result = export_facts(
                    metric=definition, fmt=fmt, out=stream, since=since_date, chunk_rows=chunk_rows
                )
            else:
                mode = (
                    {"mode": "wb"} if binary else {"mode": "w", "newline": "", "encoding": "utf-8"}
                )
                with Path(target).open(**mode) as stream:
                    result = export_facts(
                        metric=definition,
                        fmt=fmt,
                        out=stream,
                        since=since_date,
                        chunk_rows=chunk_rows,
                    )
        except (ExportError, OSError) as error:
            if target != "-":
                Path(target).unlink(missing_ok=True)  # no half-written file left behind
            raise CommandError(str(error)) from error
        if target != "-":
            note = f"; left out: {', '.join(result.left_out)}" if result.left_out else ""
            self.stdout.write(f"{result.rows} facts of {result.metric} written to {target}{note}.")
