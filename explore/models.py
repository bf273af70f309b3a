from django.conf import settings
from django.db import models

from atlas_site.schemas import EXPLORE, qualified


class FileFormat(models.TextChoices):
    CSV = "csv", "CSV"
    JSONL = "jsonl", "JSON Lines"
    JSON = "json", "JSON array"


class Compression(models.TextChoices):
    NONE = "none", "None"
    GZIP = "gzip", "gzip"


class BatchStatus(models.TextChoices):
    STORED = "stored", "Stored, waiting to load"
    LOADING = "loading", "Loading"
    LOADED = "loaded", "Loaded"
    FAILED = "failed", "Failed"


def landing_file_key(batch: "LandingBatch", filename: str) -> str:
    """Object key naming dataset, date and batch, e.g. landing/orders/2026/11/26/<uuid>/f.csv."""
    day = batch.created_at or batch.received_at
    return f"landing/{batch.dataset.slug}/{day:%Y/%m/%d}/{batch.key}/{filename}"


class LandingBatch(models.Model):
    """One file (or posted array of records) handed to Atlas for a dataset."""

    key = models.UUIDField(unique=True, help_text="Stable id used in the stored file's key.")
    dataset = models.ForeignKey(
        "pipeline.Dataset", on_delete=models.PROTECT, related_name="batches"
    )
    file = models.FileField(upload_to=landing_file_key, max_length=500)
    # The stored object is encrypted (governance.compliance.envelope); this names the
    # ATLAS_ENCRYPTION_KEYS entry wrapping its data key. Empty: stored before encryption.
    encryption_key_id = models.CharField(
        max_length=255, null=True, blank=True, editable=False, default=None
    )
    original_name = models.CharField(max_length=255, blank=True)
    sha256 = models.CharField(max_length=64)
    format = models.CharField(max_length=8, choices=FileFormat)
    compression = models.CharField(max_length=8, choices=Compression, default=Compression.NONE)
    size_bytes = models.BigIntegerField(default=0)
    received_at = models.DateTimeField(
        help_text="Arrival time; every raw record of the batch carries it (partition key)."
    )
    rows_total = models.BigIntegerField(default=0, help_text="Records read (parsed or not).")
    lines_total = models.BigIntegerField(
        default=0,
        help_text="Physical lines of data read (a quoted CSV value may span several; blank "
        "lines count too); a JSON array: its elements.",
    )
    rows_parsed = models.BigIntegerField(default=0)
    rows_failed = models.BigIntegerField(default=0)
    status = models.CharField(max_length=16, choices=BatchStatus, default=BatchStatus.STORED)
    error = models.TextField(blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    loaded_at = models.DateTimeField(null=True, blank=True)
    # Every raw record of the batch has first_raw_id <= id <= last_raw_id (other batches'
    # rows loaded at the same time may fall in between). Written in the load's own
    # transaction, so a batch without them has no rows; reads of one batch walk this
    # range of raw_record's primary key instead of an index of their own.
    first_raw_id = models.BigIntegerField(null=True, blank=True, editable=False)
    last_raw_id = models.BigIntegerField(null=True, blank=True, editable=False)

    class Meta:
        db_table = qualified(EXPLORE, "landing_batch")
        ordering = ["-created_at"]
        verbose_name_plural = "landing batches"
        constraints = [
            models.UniqueConstraint(fields=["dataset", "sha256"], name="landing_batch_unique_file"),
        ]

    def __str__(self) -> str:
        return f"batch {self.pk} of {self.dataset_id} ({self.original_name or self.format})"


class RawRecord(models.Model):
    """A line exactly as received. Partitioned by month of `received_at`.

    The database primary key is (id, received_at); Django's state knows `id` alone,
    which the identity column keeps unique.
    """

    id = models.BigAutoField(primary_key=True)
    received_at = models.DateTimeField()
    # No database constraint and no index of their own: PostgreSQL checks a foreign key
    # row by row, which halved the COPY rate (bench/ingest.py). The only writer, the
    # loader, takes both ids from the batch row it holds claimed; deletes are refused by
    # Django (PROTECT); lookups use the (dataset, id) index and batch id ranges.
    batch = models.ForeignKey(
        LandingBatch,
        on_delete=models.PROTECT,
        related_name="raw_records",
        db_index=False,
        db_constraint=False,
    )
    dataset = models.ForeignKey(
        "pipeline.Dataset",
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    line_number = models.BigIntegerField()
    payload = models.JSONField(null=True, blank=True)
    raw_text = models.TextField()
    parse_error = models.TextField(blank=True)
    payload_hash = models.CharField(max_length=64, blank=True)

    class Meta:
        db_table = qualified(EXPLORE, "raw_record")
        # A batch's lines are copied in order, so id order is line order within one.
        ordering = ["id"]
        # Two indexes only, each one a load maintains row by row: the primary key and
        # (dataset, id) for promotions. A batch's rows are found through the primary key
        # (LandingBatch.first_raw_id); each line lands once because a load is one
        # transaction under its batch's lock (explore.services.load_batch).
        indexes = [
            models.Index(fields=["dataset", "id"], name="raw_record_dataset_id_idx"),
        ]

    def __str__(self) -> str:
        return f"raw {self.pk} (batch {self.batch_id}, line {self.line_number})"
