"""Operations endpoints: /healthz, /readyz, /statusz and /metrics, for probes and Prometheus.

- /healthz: this process answers (nothing else touched).
- /readyz: this web replica can serve: its database and its cache answer. A load balancer
  or orchestrator routes to a replica by it, so it says nothing of other components: a
  worker or the object storage being away must not take every web replica out of service.
- /statusz: the pipeline's health, for dashboards and operators: the broker, a worker
  answering a ping, the scheduler's heartbeat, the object storage readable.
No probe writes anything (no object, no cache key).

None of them needs a login: probes and scrapers carry no session. /healthz, /readyz and
/statusz say nothing but up or down per component (no host, worker or node name, no
address and no error text: those go to the log); /metrics exposes dataset names and
volumes, so in production restrict it to the monitoring network (at the proxy or ingress).
"""

import logging
import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path

import redis
from django.conf import settings
from django.core.cache import cache
from django.core.files.storage import FileSystemStorage, default_storage
from django.db import connection
from django.db.models import Count, Max, Sum
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from atlas_site.celery import app
from dashboards.models import PiiFindingSummary
from dashboards.selectors import operations
from governance.pipeline.models import Layer, Run, RunStatus

logger = logging.getLogger(__name__)

# Seconds each readiness check may take; a probe should answer well within its own timeout.
CHECK_TIMEOUT = 2.0
WORKER_PING_TIMEOUT = 1.0
# kombu's Redis transport keeps one list per priority step besides the queue's own name.
PRIORITY_SEPARATOR = "\x06\x16"
PRIORITY_STEPS = (3, 6, 9)


# --- /healthz -------------------------------------------------------------------------


@never_cache
@require_GET
def healthz(request):
    """The process is up and serving requests. Touches nothing else (no database)."""
    return HttpResponse("ok\n", content_type="text/plain; charset=utf-8")


# --- /readyz and /statusz ---------------------------------------------------------------


def check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return "ok"


# A key nobody writes: reading it asks the cache server something, and changes nothing.
CACHE_PROBE_KEY = "atlas:readyz-probe"


def check_cache() -> str:
    cache.get(CACHE_PROBE_KEY)
    return "ok"


def check_broker() -> str:
    with app.connection_for_write(settings.CELERY_BROKER_URL) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=CHECK_TIMEOUT)
    return "ok"


# An object name nobody writes: asking whether it exists reads the storage and writes
# nothing (a storage with neither a folder nor a bucket).
STORAGE_PROBE_NAME = "atlas-statusz-probe"


class StorageMissingError(RuntimeError):
    """The storage's folder is not there (file storage)."""


def check_storage() -> str:
    """The object storage answers a read (file storage: its folder exists)."""
    if isinstance(default_storage, FileSystemStorage):
        if not Path(default_storage.location).is_dir():
            raise StorageMissingError(f"no folder at {default_storage.location}")
    elif bucket := getattr(default_storage, "bucket_name", None):
        # S3: HEAD of the bucket, refused when it is missing, not readable, or away.
        default_storage.connection.meta.client.head_bucket(Bucket=bucket)
    else:
        default_storage.exists(STORAGE_PROBE_NAME)
    return "ok"


class WorkerMissingError(RuntimeError):
    """No worker answered the ping (the broker did)."""


def check_worker() -> str:
    with app.connection_for_write(settings.CELERY_BROKER_URL) as conn:
        # Fail fast on a broker that is down: ping itself would retry for seconds.
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=CHECK_TIMEOUT)
        # limit=1: return at the first reply instead of waiting out the timeout.
        replies = app.control.ping(timeout=WORKER_PING_TIMEOUT, limit=1, connection=conn)
    if not replies:
        raise WorkerMissingError(f"no Celery worker answered a ping within {WORKER_PING_TIMEOUT} s")
    # The replies name the workers' nodes (celery@<host>): for the log, not for the answer.
    logger.debug("statusz: workers answering: %s", [name for reply in replies for name in reply])
    return "ok"


# The scheduler writes its heartbeat every ATLAS_LIVENESS_SECONDS (orchestration.liveness).
BEAT_SILENT_AFTER = timedelta(minutes=5)


class BeatSilentError(RuntimeError):
    """The scheduler has not written its heartbeat lately (or ever)."""


def check_beat() -> str:
    silent_for = operations.component_silences().get("beat")
    if silent_for is None or silent_for > BEAT_SILENT_AFTER.total_seconds():
        raise BeatSilentError(f"no beat heartbeat for {silent_for} s")
    return "ok"


READINESS_CHECKS: dict[str, Callable[[], str]] = {
    "database": check_database,
    "cache": check_cache,
}
PIPELINE_CHECKS: dict[str, Callable[[], str]] = {
    "broker": check_broker,
    "worker": check_worker,
    "beat": check_beat,
    "storage": check_storage,
}


def public_detail(error: Exception) -> str:
    """What an unauthenticated caller is told about a failed check: a fixed text. The
    error's own message goes to the log only: it may name hosts, ports, users, buckets or
    workers, and a probe's answer is readable by anyone who reaches the port."""
    if isinstance(error, WorkerMissingError):
        return f"no worker answered within {WORKER_PING_TIMEOUT:g} s"
    if isinstance(error, BeatSilentError):
        return f"no heartbeat for {BEAT_SILENT_AFTER.total_seconds() / 60:g} min"
    if isinstance(error, TimeoutError):
        return "timed out"
    return "unavailable"


def run_checks(checks: dict[str, Callable[[], str]], probe: str) -> dict[str, dict]:
    """Each component: {"ok": bool, "detail": str, "ms": float}; details are fixed texts."""
    results = {}
    for name, check in checks.items():
        started = time.monotonic()
        try:
            check()
            detail, ok = "ok", True
        except Exception as error:  # any failure means "not ready"
            detail, ok = public_detail(error), False
            logger.warning("%s: %s is not ready: %s: %s", probe, name, type(error).__name__, error)
        results[name] = {
            "ok": ok,
            "detail": detail,
            "ms": round((time.monotonic() - started) * 1000, 1),
        }
    return results


def readiness() -> dict[str, dict]:
    return run_checks(READINESS_CHECKS, "readyz")


def _answer(components: dict[str, dict], ready: str, not_ready: str) -> JsonResponse:
    failing = [name for name, result in components.items() if not result["ok"]]
    body: dict = {"status": ready if not failing else not_ready, "components": components}
    if failing:
        body["failing"] = failing
    return JsonResponse(body, status=503 if failing else 200)


@never_cache
@require_GET
def readyz(request):
    """200 when this web replica's database and cache answer; 503 naming the failing ones."""
    return _answer(readiness(), "ready", "not ready")


@never_cache
@require_GET
def statusz(request):
    """200 when the pipeline can run: broker, a worker, the scheduler and the object storage
    answer; 503 naming the failing ones."""
    return _answer(run_checks(PIPELINE_CHECKS, "statusz"), "ok", "degraded")


# --- /metrics -------------------------------------------------------------------------


def celery_queues() -> list[str]:
    """The queues Atlas sends to: Celery's default plus the configured ingest and
    promotion queues."""
    names = [app.conf.task_default_queue or "celery"]
    for setting in ("ATLAS_INGEST_QUEUE", "ATLAS_PROMOTION_QUEUE"):
        queue = getattr(settings, setting, None)
        if queue and queue not in names:
            names.append(queue)
    return names


def queue_lengths(queues: Iterable[str]) -> dict[str, int]:
    """Messages waiting per queue (Redis LLEN, over the queue's priority lists)."""
    client = redis.Redis.from_url(
        settings.CELERY_BROKER_URL,
        socket_timeout=CHECK_TIMEOUT,
        socket_connect_timeout=CHECK_TIMEOUT,
    )
    try:
        lengths = {}
        for queue in queues:
            keys = [queue] + [f"{queue}{PRIORITY_SEPARATOR}{step}" for step in PRIORITY_STEPS]
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.llen(key)
            lengths[queue] = sum(pipe.execute())
        return lengths
    finally:
        client.close()


class AtlasCollector(Collector):
    """Reads the figures at scrape time, from the runs' counters and the summaries.

    Every query is bounded by the number of runs or datasets, never by the data layers.
    """

    def collect(self):
        runs = CounterMetricFamily(
            "atlas_runs", "Pipeline runs by kind and status.", labels=["kind", "status"]
        )
        for row in Run.objects.values("kind", "status").annotate(n=Count("pk")).order_by():
            runs.add_metric([row["kind"], row["status"]], row["n"])
        yield runs

        promoted = CounterMetricFamily(
            "atlas_rows_promoted",
            "Rows a run moved on (loaded into explore, promoted to chart, taken into "
            "navigate), by dataset and run kind.",
            labels=["dataset", "kind"],
        )
        quarantined = CounterMetricFamily(
            "atlas_rows_quarantined",
            "Rows a run held back (unparseable lines in explore, quarantined records in "
            "chart), by dataset and run kind.",
            labels=["dataset", "kind"],
        )
        rows = (
            Run.objects.filter(dataset__isnull=False)
            .values("dataset__slug", "kind")
            .annotate(promoted=Sum("rows_promoted"), quarantined=Sum("rows_quarantined"))
            .order_by()
        )
        for row in rows:
            labels = [row["dataset__slug"], row["kind"]]
            promoted.add_metric(labels, row["promoted"] or 0)
            quarantined.add_metric(labels, row["quarantined"] or 0)
        yield promoted
        yield quarantined

        findings = CounterMetricFamily(
            "atlas_pii_findings",
            "PII findings of ended runs, by dataset and PII type.",
            labels=["dataset", "pii_type"],
        )
        for row in (
            PiiFindingSummary.objects.values("dataset__slug", "pii_type")
            .annotate(n=Sum("findings"))
            .order_by()
        ):
            findings.add_metric([row["dataset__slug"], row["pii_type"]], row["n"])
        yield findings

        last_success = GaugeMetricFamily(
            "atlas_last_successful_run_timestamp_seconds",
            "When the latest successful run of each dataset and kind finished (Unix time).",
            labels=["dataset", "kind"],
        )
        for row in (
            Run.objects.filter(status=RunStatus.SUCCEEDED, dataset__isnull=False)
            .values("dataset__slug", "kind")
            .annotate(at=Max("finished_at"))
            .order_by()
        ):
            if row["at"] is not None:
                last_success.add_metric([row["dataset__slug"], row["kind"]], row["at"].timestamp())
        yield last_success

        yield from self.collect_health()

        queue = GaugeMetricFamily(
            "atlas_queue_length", "Celery messages waiting in each queue.", labels=["queue"]
        )
        up = GaugeMetricFamily("atlas_broker_up", "1 when the broker answered this scrape.")
        if not settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
            return  # the local filesystem broker (bin/run without Redis) has no lists
        try:
            lengths = queue_lengths(celery_queues())
        except Exception as error:  # the other metrics are still worth serving
            logger.warning("metrics: cannot read queue lengths: %s", error)
            up.add_metric([], 0)
        else:
            for name, length in lengths.items():
                queue.add_metric([name], length)
            up.add_metric([], 1)
        yield queue
        yield up

    def collect_health(self):
        """What alerting needs: ages, freshness against target, dead letters, quarantine
        share and backlog (dashboards.selectors.operations; bounded per dataset)."""
        health = operations.dataset_health()
        lag = GaugeMetricFamily(
            "atlas_dataset_freshness_lag_seconds",
            "Seconds since each active dataset's last successful load or promotion to chart "
            "(absent while it has none).",
            labels=["dataset"],
        )
        target = GaugeMetricFamily(
            "atlas_dataset_freshness_target_seconds",
            "Each active dataset's freshness target, in seconds.",
            labels=["dataset"],
        )
        share = GaugeMetricFamily(
            "atlas_last_chart_run_quarantine_ratio",
            "Quarantined / examined records of each dataset's last ended explore → chart run.",
            labels=["dataset"],
        )
        backlog = GaugeMetricFamily(
            "atlas_backlog_records",
            f"Records waiting above a dataset's watermark, counted up to "
            f"{operations.BACKLOG_CAP}: layer chart, raw records not yet promoted to chart; "
            "layer navigate, chart records not yet taken into navigate (an estimate).",
            labels=["dataset", "layer"],
        )
        for dataset in health:
            if dataset.freshness_lag is not None:
                lag.add_metric([dataset.slug], dataset.freshness_lag)
            if dataset.freshness_target > 0:
                target.add_metric([dataset.slug], dataset.freshness_target)
            if dataset.quarantine_share is not None:
                share.add_metric([dataset.slug], dataset.quarantine_share)
            backlog.add_metric([dataset.slug, Layer.CHART.value], dataset.chart_backlog)
            backlog.add_metric([dataset.slug, Layer.NAVIGATE.value], dataset.navigate_backlog)
        yield from (lag, target, share, backlog)

        age = GaugeMetricFamily(
            "atlas_last_successful_run_age_seconds",
            "Seconds since the latest successful run of each dataset and kind finished.",
            labels=["dataset", "kind"],
        )
        for (slug, kind), seconds in operations.last_success_ages().items():
            age.add_metric([slug, kind], seconds)
        yield age

        skipped = CounterMetricFamily(
            "atlas_runs_skipped",
            "Runs skipped (another of the kind was under way), by dataset and kind.",
            labels=["dataset", "kind"],
        )
        for (slug, kind), count in operations.skipped_runs().items():
            skipped.add_metric([slug, kind], count)
        yield skipped

        letters = GaugeMetricFamily(
            "atlas_dead_letters",
            "Task messages set aside after killing their workers ATLAS_MAX_DELIVERIES times.",
        )
        letters.add_metric([], operations.dead_letter_count())
        yield letters

        oldest_run = GaugeMetricFamily(
            "atlas_oldest_active_run_age_seconds",
            "Age of the oldest queued run (since made) and running run (since started); "
            "absent when none.",
            labels=["status"],
        )
        for status, seconds in operations.oldest_active_run_ages().items():
            oldest_run.add_metric([status], seconds)
        yield oldest_run

        oldest_batch = GaugeMetricFamily(
            "atlas_oldest_pending_batch_age_seconds",
            "Age of the oldest landing batch stored and waiting to load, or loading; absent "
            "when none.",
            labels=["status"],
        )
        for status, seconds in operations.oldest_pending_batch_ages().items():
            oldest_batch.add_metric([status], seconds)
        yield oldest_batch

        silence = GaugeMetricFamily(
            "atlas_component_last_seen_age_seconds",
            "Seconds since a worker, or the scheduler (beat), last wrote its heartbeat; "
            "absent for a component never seen.",
            labels=["component"],
        )
        for component, seconds in operations.component_silences().items():
            silence.add_metric([component], seconds)
        yield silence

        locks = GaugeMetricFamily(
            "atlas_promotion_lock_held_seconds",
            "Each promotion lock held: its dataset and layer, the running run holding it "
            "(empty: a session with no running run), and for how long.",
            labels=["dataset", "layer", "run"],
        )
        for holder in operations.promotion_lock_holders():
            run = str(holder.run_id) if holder.run_id is not None else ""
            locks.add_metric([holder.slug, holder.layer, run], holder.held_for)
        yield locks


@never_cache
@require_GET
def metrics(request):
    """Prometheus text exposition format. Restrict to the monitoring network in production."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AtlasCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
