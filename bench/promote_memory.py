"""Promotion memory on wide records: chunks bounded by rows alone vs by rows and bytes.

    .venv/bin/python bench/promote_memory.py                       # 5,000 records x 1,000 fields
    .venv/bin/python bench/promote_memory.py --rows 2000 --fields 300

Lands the same N seeded records of F fields (strings, integers, decimals, dates) in two
datasets with the same contract, then promotes each to chart in a fresh process:
  1. chunks bounded by rows only (ATLAS_PROMOTION_CHUNK_SIZE, the behaviour before
     chunks were sized by bytes);
  2. chunks bounded by rows and bytes (ATLAS_PROMOTION_CHUNK_BYTES, the default);
and prints, for each, the peak resident memory of the promoting process (VmHWM, less
what it held before promoting), the sum of the evaluation processes' peaks (sampled
from /proc every 50 ms, each less the promoting process's memory they were forked
from), the chunks and rows/s, against the plain-SQL limit measured in
the same run: a bare INSERT ... SELECT of the same payloads into an unindexed table.
The database is DATABASE_URL (default atlas_bench), created and migrated if missing.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "atlas_site.settings.local")
import django

from bench import database

database.prepare()
django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from bench.promote import bare_insert_select  # noqa: E402

SEED = 20261206
KINDS = ("string", "integer", "decimal", "date")
ROWS_ONLY_BYTES = 1 << 62  # a byte bound no chunk reaches: rows alone bound it


def field_kind(position: int) -> str:
    return KINDS[position % len(KINDS)]


def make_record(rng: random.Random, number: int, fields: int) -> dict:
    record: dict = {"id": number}
    for position in range(1, fields):
        kind = field_kind(position)
        if kind == "string":
            value = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(12))
        elif kind == "integer":
            value = rng.randrange(-1_000_000, 1_000_000)
        elif kind == "decimal":
            value = f"{rng.uniform(-10_000, 10_000):.2f}"
        else:
            value = (date(2020, 1, 1) + timedelta(days=rng.randrange(2000))).isoformat()
        record[f"f{position:04d}"] = value
    return record


def make_dataset(slug: str, fields: int):
    from governance.pipeline.models import Dataset, DatasetField

    dataset = Dataset.objects.create(slug=slug, name=f"Wide records ({fields} fields)")
    DatasetField.objects.bulk_create(
        [DatasetField(dataset=dataset, name="id", position=0, data_type="integer", unique=True)]
        + [
            DatasetField(
                dataset=dataset,
                name=f"f{position:04d}",
                position=position,
                data_type=field_kind(position),
            )
            for position in range(1, fields)
        ]
    )
    return dataset


def land(datasets, rows: int, fields: int) -> int:
    """COPY the same records into each dataset as one landed batch; their payload bytes."""
    from explore.models import LandingBatch

    received = datetime.now(UTC)
    batches = {
        dataset.pk: LandingBatch.objects.create(
            key=uuid.uuid4(),
            dataset=dataset,
            sha256=uuid.uuid4().hex * 2,
            format="jsonl",
            received_at=received,
            status="loaded",
            rows_total=rows,
            rows_parsed=rows,
        )
        for dataset in datasets
    }
    columns = (
        "received_at, batch_id, dataset_id, line_number, payload, raw_text, parse_error, "
        "payload_hash"
    )
    rng = random.Random(SEED)
    size = 0
    with connection.cursor() as cursor:
        copy_sql = f'COPY "explore"."raw_record" ({columns}) FROM STDIN'
        with cursor.connection.cursor().copy(copy_sql) as copy:
            for line in range(1, rows + 1):
                text = json.dumps(make_record(rng, line, fields))
                size += len(text)
                for dataset in datasets:
                    batch = batches[dataset.pk]
                    copy.write_row((received, batch.pk, dataset.pk, line, text, "", "", ""))
    return size


# --- One promotion, in a process of its own ---------------------------------------------------


def status_kb(pid: int | str, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def children_of(pid: int) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except (FileNotFoundError, ProcessLookupError):
                continue
            # The command may hold spaces and parentheses: the parent id follows the last ')'.
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(entry.name)
    return found


class ChildPeaks(threading.Thread):
    """Samples the peak resident memory (VmHWM) of this process's children until stopped."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peaks: dict[str, int] = {}
        self.done = threading.Event()

    def run(self) -> None:
        me = os.getpid()
        while not self.done.wait(0.05):
            for child in children_of(me):
                self.peaks[child] = max(self.peaks.get(child, 0), status_kb(child, "VmHWM"))

    def growth_mb(self, forked_from_kb: int) -> float:
        """Their peaks summed, less what each held when forked (a copy of its parent)."""
        return sum(max(0, peak - forked_from_kb) for peak in self.peaks.values()) / 1024


def promote_one(dataset_id: int, chunk_bytes: int) -> None:
    from chart.services import promote_to_chart
    from governance.pipeline.models import Dataset

    dataset = Dataset.objects.get(pk=dataset_id)
    before_kb = status_kb("self", "VmRSS")
    peaks = ChildPeaks()
    peaks.start()
    started = time.perf_counter()
    run = promote_to_chart(dataset=dataset, triggered_by="benchmark", chunk_bytes=chunk_bytes)
    seconds = time.perf_counter() - started
    peaks.done.set()
    peaks.join()
    print(
        json.dumps(
            {
                "status": run.status,
                "error": run.error,
                "rows_in": run.rows_in,
                "chunks": (run.detail or {}).get("chunks"),
                "seconds": seconds,
                "own_peak_mb": (status_kb("self", "VmHWM") - before_kb) / 1024,
                "evaluation_peaks_mb": peaks.growth_mb(before_kb),
                "evaluation_processes": len(peaks.peaks),
            }
        )
    )


def promote_in_subprocess(dataset, chunk_bytes: int) -> dict:
    command = [sys.executable, __file__, "--promote", str(dataset.pk), str(chunk_bytes)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the promotion failed:\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["status"] != "succeeded":
        raise SystemExit(f"the promotion did not succeed: {result['error']}")
    return result


def main() -> None:
    from django.conf import settings

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--fields", type=int, default=1000)
    parser.add_argument("--promote", nargs=2, type=int, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.promote:
        promote_one(*options.promote)
        return

    call_command("migrate", verbosity=0)
    stamp = f"{datetime.now(UTC):%Y%m%d%H%M%S}"
    rows_only = make_dataset(f"bench-wide-{stamp}-rows", options.fields)
    by_bytes = make_dataset(f"bench-wide-{stamp}-bytes", options.fields)
    started = time.perf_counter()
    size = land([rows_only, by_bytes], options.rows, options.fields)
    print(
        f"Promotion memory: {options.rows:,} records x {options.fields:,} fields "
        f"({size / options.rows / 1024:.1f} KiB of JSON each, {size / 2**20:.0f} MiB in all), "
        f"landed twice in {time.perf_counter() - started:.1f} s; {os.cpu_count()} cores",
        flush=True,
    )
    bare = bare_insert_select(by_bytes)
    chunk_bytes = settings.ATLAS_PROMOTION_CHUNK_BYTES
    results = [
        (f"rows only ({settings.ATLAS_PROMOTION_CHUNK_SIZE:,} per chunk)", ROWS_ONLY_BYTES),
        (f"rows and bytes ({chunk_bytes / 2**20:.0f} MiB per chunk)", chunk_bytes),
    ]
    print(
        f"\n{'chunks bounded by':<32}{'chunks':>7}{'rows/s':>9}{'vs bare SQL':>13}"
        f"{'promoting MB':>14}{'evaluation MB':>15}"
    )
    for label, bound in results:
        dataset = rows_only if bound == ROWS_ONLY_BYTES else by_bytes
        result = promote_in_subprocess(dataset, bound)
        assert result["rows_in"] == options.rows, result
        rate = options.rows / result["seconds"]
        print(
            f"{label:<32}{result['chunks']:>7}{rate:>9,.0f}"
            f"{result['seconds'] and bare / result['seconds']:>13.1%}"
            f"{result['own_peak_mb']:>14,.0f}"
            f"{result['evaluation_peaks_mb']:>11,.0f} ({result['evaluation_processes']})",
            flush=True,
        )
    print(
        f"{'limit: bare INSERT ... SELECT':<32}{'':>7}{options.rows / bare:>9,.0f}\n"
        "promoting MB: the promoting process's peak RSS less its RSS before the promotion; "
        "evaluation MB: the sum of the evaluation processes' peaks, each less what it was "
        "forked with (their number)"
    )


if __name__ == "__main__":
    main()
