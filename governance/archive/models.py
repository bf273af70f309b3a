from django.db import models

from atlas_site.schemas import ARCHIVE, qualified
from governance.pipeline.models import Run, RunKind


class ArchiveRunManager(models.Manager):
    def get_queryset(self):
        return super().get_queryset().filter(kind=RunKind.ARCHIVE)


class RetentionLayer(models.TextChoices):
    EXPLORE = "explore", "explore: raw records"
    CHART = "chart", "chart: superseded records"
    NAVIGATE = "navigate", "navigate: facts"
    COMPLIANCE = "compliance", "compliance: audit log"


class RetentionAction(models.TextChoices):
    ARCHIVE = "archive", "Archive to object storage, then drop"
    DELETE = "delete", "Drop without archiving"


class RetentionPolicy(models.Model):
    layer = models.CharField(max_length=16, choices=RetentionLayer)
    dataset = models.ForeignKey(
        "pipeline.Dataset",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="retention_policies",
        help_text="Empty: the policy covers every dataset of the layer.",
    )
    keep_months = models.PositiveIntegerField(help_text="Partitions older than this are retired.")
    action = models.CharField(
        max_length=16, choices=RetentionAction, default=RetentionAction.ARCHIVE
    )
    legal_hold = models.BooleanField(
        default=False, help_text="While on hold nothing covered is archived or dropped."
    )
    legal_hold_reason = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = qualified(ARCHIVE, "retention_policy")
        verbose_name_plural = "retention policies"
        constraints = [
            models.CheckConstraint(condition=models.Q(keep_months__gte=1), name="keep_at_least_1"),
            models.CheckConstraint(
                condition=~models.Q(layer="compliance", action="delete"),
                name="audit_log_is_archived_never_deleted",
                violation_error_message="The audit log is archived, never deleted.",
            ),
            models.CheckConstraint(
                condition=models.Q(legal_hold=False) | ~models.Q(legal_hold_reason=""),
                name="legal_hold_has_reason",
                violation_error_message="A legal hold needs its reason.",
            ),
            # The audit log has no datasets: its one policy covers the whole log.
            models.CheckConstraint(
                condition=~models.Q(layer="compliance", dataset__isnull=False),
                name="audit_log_policy_covers_all",
                violation_error_message="The audit log has no datasets: leave the dataset empty.",
            ),
            # One policy per dataset and layer, and one for "all datasets" of a layer, so
            # which policy applies to a dataset is never ambiguous.
            models.UniqueConstraint(
                fields=["layer", "dataset"],
                nulls_distinct=False,
                name="one_policy_per_layer_and_scope",
                violation_error_message="This layer already has a policy for that scope.",
            ),
        ]

    def __str__(self) -> str:
        scope = self.dataset_id or "all datasets"
        return f"{self.layer} / {scope}: keep {self.keep_months} months, then {self.action}"


class ArchivedPartition(models.Model):
    """Manifest of a partition exported to object storage.

    `byte_size` and `sha256` describe the object as stored (encrypted; see
    governance.compliance.envelope), so it can be checked without the key; the rows
    inside are checked by decrypting it (every chunk authenticated) and counting them.
    """

    table_name = models.CharField(max_length=200, help_text="Parent table, schema-qualified.")
    partition_name = models.CharField(max_length=200)
    range_start = models.DateTimeField()
    range_end = models.DateTimeField()
    row_count = models.BigIntegerField()
    byte_size = models.BigIntegerField(help_text="Size of the stored (encrypted) object.")
    sha256 = models.CharField(max_length=64, help_text="SHA-256 of the stored (encrypted) object.")
    object_key = models.CharField(max_length=500)
    encryption_key_id = models.CharField(
        max_length=255,
        null=True,
        blank=True,
        default=None,
        help_text="The ATLAS_ENCRYPTION_KEYS entry wrapping the object's data key; "
        "empty for an object archived before encryption (plain gzip).",
    )
    policy = models.ForeignKey(
        RetentionPolicy, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    run = models.ForeignKey(
        "pipeline.Run", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    archived_at = models.DateTimeField(auto_now_add=True)
    archived_by = models.CharField(max_length=150)
    restored_at = models.DateTimeField(null=True, blank=True)
    restored_by = models.CharField(max_length=150, blank=True)

    class Meta:
        db_table = qualified(ARCHIVE, "archived_partition")
        ordering = ["-archived_at"]
        constraints = [
            # A range may be archived again after a restore, never twice while archived.
            models.UniqueConstraint(
                fields=["table_name", "range_start"],
                condition=models.Q(restored_at__isnull=True),
                name="archived_partition_once",
            ),
            models.UniqueConstraint(fields=["object_key"], name="archived_object_once"),
        ]

    def __str__(self) -> str:
        return f"{self.partition_name} ({self.row_count} rows)"


class ArchiveRun(Run):
    """The pipeline runs of kind 'archive' (retention), shown in the archive admin."""

    objects = ArchiveRunManager()

    class Meta:
        proxy = True
        verbose_name = "retention run"
