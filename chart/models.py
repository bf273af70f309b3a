from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.db import models

from atlas_site.schemas import CHART, qualified

# How a chart record's values were stored: 1 masked at promotion (before Atlas protected
# values where they leave the database), 2 typed, encrypted ones with tokens.
# `manage.py rebuild_chart_values` turns 1 into 2 from explore.
LEGACY_MASKED = 1
TYPED_VALUES = 2
# The longest business key a record keeps (a longer one is not kept: '').
BUSINESS_KEY_LENGTH = 500


class ChartRecord(models.Model):
    """A raw record that passed its contract: typed, restricted values encrypted.

    Values are kept as their type gives them, so uniqueness, business keys and metrics
    work on real values; a reader without clearance for a field's level sees it masked
    (governance.compliance.protection). A field whose level requires encryption holds
    the ciphertext, and `tokens` a keyed token of its typed value for equality.

    The table is range-partitioned by month of `created_at`, the promotion time
    (atlas_site.partitions.CHART_RECORDS, migration 0010): its primary key is
    (id, created_at), each partition's primary key index answers a lookup by id, and
    a key into it (superseded_by, a finding's or a quarantined record's chart_record)
    has no database constraint, which would need the partition key in it.
    """

    # The keys to the dataset, the run and the successor have no database constraints:
    # PostgreSQL would check each row of a promotion's COPY against the dataset and the
    # run (a sixth of the database's time per record), while chart.writing.store_verdicts
    # is the only writer of new rows and Django's deletion collector keeps PROTECT and
    # SET_NULL. Neither the dataset nor the raw record needs an index of its own: every
    # lookup names the dataset, and (dataset, business_key) and (dataset, raw_record)
    # lead with it.
    dataset = models.ForeignKey(
        "pipeline.Dataset",
        on_delete=models.PROTECT,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    # explore.raw_record is partitioned: a real foreign key would need its partition key.
    raw_record = models.ForeignKey(
        "explore.RawRecord",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    business_key = models.CharField(max_length=BUSINESS_KEY_LENGTH, blank=True)
    data = models.JSONField(
        help_text="Typed values of the contract's fields; ciphertext where the level requires "
        "encryption; PII the level does not expect replaced by its type (<payment_card>)."
    )
    extras = models.JSONField(
        default=dict,
        blank=True,
        help_text="Fields not in the contract, kept aside as received (PII replaced by its type).",
    )
    tokens = models.JSONField(
        default=dict,
        blank=True,
        help_text="Keyed tokens (ATLAS_HASH_KEY) of encrypted, tagged and unique fields' values: "
        "equality without the values.",
    )
    sealed = models.JSONField(
        default=dict,
        blank=True,
        help_text="Originals of values whose PII was replaced by its type, encrypted: "
        '{"data": {field: …}, "extras": {field: …}}; for reveal and re-processing.',
    )
    protection_version = models.PositiveSmallIntegerField(
        default=TYPED_VALUES,
        help_text="1: masked at promotion (rebuild_chart_values turns it typed); 2: typed.",
    )
    issues = models.JSONField(
        default=list,
        blank=True,
        help_text="Rules this record failed under a 'warn' gate: {field, rule, message, excerpt}.",
    )
    is_current = models.BooleanField(
        default=True, help_text="False once a later record with the same business key arrived."
    )
    superseded_by = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
    )
    run = models.ForeignKey(
        "pipeline.Run", on_delete=models.PROTECT, db_constraint=False, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = qualified(CHART, "chart_record")
        ordering = ["-id"]
        indexes = [
            # Not unique: on a partitioned table a unique index must hold the partition
            # key, and (dataset, raw record, promotion time) would refuse nothing. A raw
            # record reaches chart once because its chunk commits with the watermark that
            # passes it (chart.writing), and a quarantined one because it is claimed
            # (quarantine_once), as a raw record lands once in explore (its load's lock).
            models.Index(fields=["dataset", "raw_record"], name="chart_record_raw_idx"),
            models.Index(fields=["dataset", "business_key"], name="chart_record_key_idx"),
            # Only the legacy records (none once they are rebuilt): what
            # rebuild_chart_values walks and the atlas.W010 check counts, cheaply.
            models.Index(
                fields=["dataset", "id"],
                condition=models.Q(protection_version=LEGACY_MASKED),
                name="chart_record_legacy_idx",
            ),
        ]

    def __str__(self) -> str:
        # Never the business key: its values are as sensitive as the key's fields, and this
        # text reaches the audit log, links and breadcrumbs.
        return f"chart {self.pk} (dataset {self.dataset_id})"


class QuarantineStatus(models.TextChoices):
    OPEN = "open", "Open"
    REPROCESSED = "reprocessed", "Re-processed"
    DISMISSED = "dismissed", "Dismissed"


class QuarantinedRecord(models.Model):
    """A raw record that failed its contract, with every reason."""

    dataset = models.ForeignKey("pipeline.Dataset", on_delete=models.PROTECT, related_name="+")
    # explore.raw_record is partitioned: a real foreign key would need its partition key.
    raw_record = models.ForeignKey(
        "explore.RawRecord",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    reasons = models.JSONField(help_text="A list of {field, rule, value_excerpt, message}.")
    # As chart keeps it (chart.business_keys), from the raw payload or the corrected copy.
    business_key = models.CharField(
        max_length=BUSINESS_KEY_LENGTH,
        blank=True,
        default="",
        db_default="",  # rows written by SQL that does not name it (COPY, seeds) get ''
        help_text="The key fields' typed values joined by |, a part chart holds encrypted or "
        "tagged as its keyed token; empty when the record has no whole key.",
    )
    status = models.CharField(
        max_length=16, choices=QuarantineStatus, default=QuarantineStatus.OPEN
    )
    run = models.ForeignKey("pipeline.Run", on_delete=models.PROTECT, related_name="+")
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution_note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # A steward's fix: the raw record in explore stays exactly as received.
    corrected_payload = models.JSONField(
        null=True,
        blank=True,
        help_text="The raw payload with a steward's corrections; re-processing judges this "
        "instead of the raw payload.",
    )
    corrected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    corrected_at = models.DateTimeField(null=True, blank=True)
    reprocess_run = models.ForeignKey(
        "pipeline.Run",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="The latest run that re-processed this record.",
    )
    # chart_record is partitioned: a real foreign key would need its partition key.
    chart_record = models.ForeignKey(
        ChartRecord,
        on_delete=models.SET_NULL,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
        help_text="The chart record it became once re-processed.",
    )

    class Meta:
        db_table = qualified(CHART, "quarantined_record")
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "raw_record"], name="quarantine_once"),
        ]
        indexes = [
            models.Index(fields=["dataset", "status"], name="quarantine_dataset_status_idx"),
            # Filtering by field and reason (`reasons @> '[{"field": ...}]'`) on millions
            # of rows: jsonb_path_ops answers containment only, and is the smaller index.
            GinIndex(
                fields=["reasons"], opclasses=["jsonb_path_ops"], name="quarantine_reasons_idx"
            ),
            # The review's search by business key: a whole key (=) or its leading parts
            # (LIKE 'a|b|%'), per dataset; pattern_ops answers both whatever the collation.
            models.Index(
                fields=["dataset", "business_key"],
                opclasses=["int8_ops", "varchar_pattern_ops"],
                name="quarantine_key_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"quarantined {self.pk} ({self.dataset_id})"


class PiiFinding(models.Model):
    """PII seen in a record's field. Holds a masked excerpt, never the raw value."""

    dataset = models.ForeignKey("pipeline.Dataset", on_delete=models.PROTECT, related_name="+")
    # explore.raw_record is partitioned: a real foreign key would need its partition key.
    raw_record = models.ForeignKey(
        "explore.RawRecord",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    # chart_record is partitioned: a real foreign key would need its partition key.
    chart_record = models.ForeignKey(
        ChartRecord,
        on_delete=models.CASCADE,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="pii_findings",
    )
    field_name = models.CharField(max_length=63)
    pii_type = models.CharField(max_length=32)
    pattern = models.ForeignKey(
        "compliance.PiiPattern", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    confidence = models.DecimalField(max_digits=3, decimal_places=2)
    masked_excerpt = models.CharField(max_length=200)
    # Character offsets in the value as received (null for findings made before Atlas
    # kept them): what a review highlights, and what span-level evaluation compares.
    span_start = models.PositiveIntegerField(
        null=True, blank=True, help_text="Where the PII starts in the value as received."
    )
    span_end = models.PositiveIntegerField(
        null=True, blank=True, help_text="Where it ends (exclusive)."
    )
    run = models.ForeignKey("pipeline.Run", on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = qualified(CHART, "pii_finding")
        ordering = ["-id"]
        indexes = [
            models.Index(
                fields=["dataset", "field_name", "pii_type"], name="pii_finding_field_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.pii_type} in {self.dataset_id}.{self.field_name}"
