from datetime import timedelta
from decimal import Decimal
from urllib.parse import urlsplit

from celery.schedules import crontab
from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from atlas_site.schemas import PIPELINE, qualified
from governance.compliance.pii.validators import check_region
from governance.compliance.regex_safety import check_pattern


def validate_country(value: str) -> None:
    """An ISO 3166 alpha-2 code libphonenumber knows, in capitals (NL, GB; not UK)."""
    try:
        region = check_region(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
    if region != value:
        raise ValidationError(f"Write the country code in capitals: {region}.")


COUNTRY_HELP = (
    "ISO 3166 code of the country its values come from (e.g. NL): phone numbers written "
    "without their country code are read as this country's. Blank: "
)


class Layer(models.TextChoices):
    EXPLORE = "explore", "explore (bronze)"
    CHART = "chart", "chart (silver)"
    NAVIGATE = "navigate", "navigate (gold)"


class GateAction(models.TextChoices):
    WARN = "warn", "Warn: promote and record the failure"
    QUARANTINE = "quarantine", "Quarantine the failing rows"
    FAIL = "fail", "Fail the run: promote nothing of it"


FIELD_NAME_VALIDATOR = RegexValidator(
    r"^[A-Za-z_][A-Za-z0-9_]{0,62}$",
    "A field name starts with a letter or underscore and holds only letters, digits and "
    "underscores (at most 63 characters).",
)


def validate_cron(value: str) -> None:
    """A five-field cron expression (minute hour day-of-month month day-of-week)."""

    parts = value.split()
    if len(parts) != 5:
        raise ValidationError(
            "A schedule has five fields: minute hour day-of-month month day-of-week "
            f"(e.g. '0 * * * *'); got {len(parts)}."
        )
    try:
        crontab(*parts)
    except (ValueError, TypeError) as exc:
        raise ValidationError(f"Not a valid cron schedule: {exc}") from exc


class Dataset(models.Model):
    """An entry of the catalog: one stream of records with its contract and its gate."""

    slug = models.SlugField(max_length=80, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="owned_datasets",
    )
    business_key = ArrayField(
        models.CharField(max_length=63, validators=[FIELD_NAME_VALIDATOR]),
        default=list,
        blank=True,
        help_text="Contract fields that identify a record; a later record with the same key "
        "supersedes the earlier one. Comma separated.",
    )
    quality_threshold = models.DecimalField(
        max_digits=5,
        decimal_places=4,
        # A Decimal: the float 0.95 is 0.94999999999999995559..., which full_clean (a
        # contract imported without a threshold) refused for its decimal places.
        default=Decimal("0.95"),
        validators=[MinValueValidator(0), MaxValueValidator(1)],
        help_text="Overall quality score (0 to 1) below which the gate applies.",
    )
    gate_action = models.CharField(max_length=16, choices=GateAction, default=GateAction.QUARANTINE)
    schedule = models.CharField(
        max_length=100,
        blank=True,
        validators=[validate_cron],
        help_text="Cron expression for scheduled promotion (e.g. '*/15 * * * *'); empty = manual.",
    )
    auto_promote = models.BooleanField(
        default=True, help_text="Promote through to navigate as soon as a batch has landed."
    )
    freshness_target = models.DurationField(
        default=timedelta(days=1),
        help_text="How old a record's event time may be and still count as timely.",
    )
    event_time_field = models.CharField(
        max_length=63,
        blank=True,
        validators=[FIELD_NAME_VALIDATOR],
        help_text="Contract field holding each record's event time (for timeliness).",
    )
    country = models.CharField(
        max_length=2,
        blank=True,
        validators=[validate_country],
        help_text=COUNTRY_HELP + "the regions of ATLAS_PHONE_REGIONS.",
    )
    odcs_extras = models.JSONField(
        default=dict,
        blank=True,
        editable=False,
        help_text="What the ODCS document this contract was imported from held that Atlas "
        "has no place for (custom properties, servers, SLA, support...), given back when the "
        "contract is exported as ODCS.",
    )
    is_active = models.BooleanField(default=True)
    reader_groups = models.ManyToManyField(
        "auth.Group",
        blank=True,
        related_name="readable_datasets",
        help_text="Only members of these groups (and the owner) read this dataset's records; "
        "everyone else sees that the dataset exists, but none of its records. Empty: whoever "
        "may view records.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = qualified(PIPELINE, "dataset")
        ordering = ["slug"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(quality_threshold__gte=0, quality_threshold__lte=1),
                name="dataset_quality_threshold_0_1",
            ),
        ]

    def __str__(self) -> str:
        return self.slug


class FieldType(models.TextChoices):
    STRING = "string", "String"
    INTEGER = "integer", "Integer"
    DECIMAL = "decimal", "Decimal"
    BOOLEAN = "boolean", "Boolean"
    DATE = "date", "Date"
    DATETIME = "datetime", "Date and time"
    EMAIL = "email", "Email address"
    ENUM = "enum", "Enumeration"


class DatasetField(models.Model):
    """One field of a dataset's contract."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="fields")
    name = models.CharField(max_length=63, validators=[FIELD_NAME_VALIDATOR])
    position = models.PositiveSmallIntegerField(default=0)
    data_type = models.CharField(max_length=16, choices=FieldType, default=FieldType.STRING)
    required = models.BooleanField(default=False)
    unique = models.BooleanField(default=False)
    max_length = models.PositiveIntegerField(null=True, blank=True)
    allowed_values = ArrayField(
        models.CharField(max_length=200),
        default=list,
        blank=True,
        help_text="For enumerations (and optionally strings): the only values accepted.",
    )
    pattern = models.CharField(
        max_length=500, blank=True, help_text="A regex the whole value must match."
    )
    minimum = models.DecimalField(max_digits=30, decimal_places=10, null=True, blank=True)
    maximum = models.DecimalField(max_digits=30, decimal_places=10, null=True, blank=True)
    classification = models.ForeignKey(
        "compliance.ClassificationLevel",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="dataset_fields",
    )
    country = models.CharField(
        max_length=2,
        blank=True,
        validators=[validate_country],
        help_text=COUNTRY_HELP + "the dataset's country.",
    )
    description = models.TextField(blank=True)

    class Meta:
        db_table = qualified(PIPELINE, "dataset_field")
        ordering = ["dataset", "position", "name"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "name"], name="dataset_field_unique_name"),
        ]

    def __str__(self) -> str:
        return f"{self.dataset.slug}.{self.name}"

    def clean(self) -> None:
        errors = {}
        if self.data_type == FieldType.ENUM and not self.allowed_values:
            errors["allowed_values"] = "An enumeration needs its allowed values."
        if self.pattern:
            try:
                check_pattern(self.pattern, field="pattern")
            except ValidationError as exc:
                errors.update(exc.message_dict)
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            errors["maximum"] = "The maximum is below the minimum."
        if errors:
            raise ValidationError(errors)


class RunKind(models.TextChoices):
    INGEST = "ingest", "Ingest into explore"
    PROMOTE_CHART = "promote_chart", "Promote explore → chart"
    PROMOTE_NAVIGATE = "promote_navigate", "Promote chart → navigate"
    MAINTENANCE = "maintenance", "Partition maintenance"
    ARCHIVE = "archive", "Retention and archive"
    REPROTECT = "reprotect", "Re-protect chart values"


# The runs a dataset's freshness counts from (its freshness_target): a load into explore or a
# promotion to chart. The home page, /metrics and the alerts all read it from here.
FRESHNESS_KINDS = (RunKind.INGEST, RunKind.PROMOTE_CHART)


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"


class Run(models.Model):
    """One execution of a pipeline step, with its counts: in = promoted + quarantined."""

    dataset = models.ForeignKey(
        Dataset, on_delete=models.PROTECT, null=True, blank=True, related_name="runs"
    )
    kind = models.CharField(max_length=32, choices=RunKind)
    status = models.CharField(max_length=16, choices=RunStatus, default=RunStatus.QUEUED)
    triggered_by = models.CharField(
        max_length=100, help_text="What started it: a user, 'schedule', 'api', 'batch-landed'…"
    )
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    rows_in = models.BigIntegerField(default=0)
    rows_promoted = models.BigIntegerField(default=0)
    rows_quarantined = models.BigIntegerField(default=0)
    error = models.TextField(blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        db_table = qualified(PIPELINE, "run")
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["dataset", "kind", "-created_at"], name="run_dataset_kind_idx"),
            models.Index(fields=["status"], name="run_status_idx"),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} {self.kind} {self.status}"

    @property
    def duration(self) -> timedelta | None:
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None

    @property
    def mostly_quarantined(self) -> bool:
        """A promotion that "succeeded" while holding back most of what it read: its pages
        say so prominently, a success in name only."""
        return (
            self.kind == RunKind.PROMOTE_CHART
            and self.status == RunStatus.SUCCEEDED
            and mostly_quarantined(examined=self.rows_in, quarantined=self.rows_quarantined)
        )

    @property
    def quarantined_share(self) -> float:
        return self.rows_quarantined / self.rows_in if self.rows_in else 0.0


def mostly_quarantined(*, examined: int, quarantined: int) -> bool:
    """More than half of what was examined went to quarantine."""
    return examined > 0 and quarantined * 2 > examined


class RunStep(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="steps")
    name = models.CharField(max_length=100)
    status = models.CharField(max_length=16, choices=RunStatus, default=RunStatus.RUNNING)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    rows = models.BigIntegerField(default=0)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        db_table = qualified(PIPELINE, "run_step")
        ordering = ["run", "started_at", "id"]

    def __str__(self) -> str:
        return f"{self.run_id}: {self.name}"


class Watermark(models.Model):
    """How far a dataset has been processed into a layer (the last source id taken)."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="watermarks")
    layer = models.CharField(max_length=16, choices=Layer)
    position = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = qualified(PIPELINE, "watermark")
        constraints = [
            models.UniqueConstraint(fields=["dataset", "layer"], name="watermark_dataset_layer"),
        ]

    def __str__(self) -> str:
        return f"{self.dataset_id}/{self.layer}@{self.position}"


class Transform(models.TextChoices):
    LANDED = "landed", "Landed as received"
    TYPED = "typed", "Validated and typed"
    MASKED = "masked", "Masked"
    ENCRYPTED = "encrypted", "Encrypted"
    AGGREGATED = "aggregated", "Aggregated"
    GROUPED = "grouped", "Carried as a grouping key"


# Transforms after which the value itself is gone: a classification stops there.
VALUE_REMOVING_TRANSFORMS = frozenset({Transform.MASKED, Transform.ENCRYPTED, Transform.AGGREGATED})


def chart_transform(*, requires_encryption: bool) -> str:
    """How a field's values reach chart under its level: encrypted, or typed as they are."""
    return Transform.ENCRYPTED if requires_encryption else Transform.TYPED


class LineageEdge(models.Model):
    """Data moved from one layer to the next, at dataset level (field blank) or field level."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="lineage_edges")
    source_layer = models.CharField(max_length=16, choices=Layer)
    source_field = models.CharField(max_length=63, blank=True)
    target_layer = models.CharField(max_length=16, choices=Layer)
    target_name = models.CharField(
        max_length=120, blank=True, help_text="Target field, or the metric a fact belongs to."
    )
    transform = models.CharField(max_length=16, choices=Transform)
    run = models.ForeignKey(Run, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = qualified(PIPELINE, "lineage_edge")
        ordering = ["dataset", "source_layer", "source_field"]
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "dataset",
                    "source_layer",
                    "source_field",
                    "target_layer",
                    "target_name",
                    "transform",
                ],
                name="lineage_edge_unique",
            ),
        ]

    def __str__(self) -> str:
        source = f"{self.source_layer}.{self.source_field or '*'}"
        return f"{self.dataset_id}: {source} → {self.target_layer}.{self.target_name or '*'}"


class ApiToken(models.Model):
    """A personal token for the HTTP API (`/api/`). Only its SHA-256 digest is stored.

    The plain token is shown once, when it is issued; a token reaches the datasets its
    user may change (see explore.selectors.can_ingest), all of them or, when
    `all_datasets` is off, only those listed in `datasets`. A limited token whose
    datasets are all deleted reaches none: the flag, not an empty list, says "all".
    Tokens issued before limits and expiry existed keep all_datasets on and no expiry.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(
        max_length=100, help_text="What the token is for, e.g. 'nightly ERP export'."
    )
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(
        max_length=8, editable=False, help_text="First characters of the token, to recognise it."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="Optional: the token stops working at this time."
    )
    all_datasets = models.BooleanField(
        default=True,
        help_text="The token reaches every dataset its user may change; "
        "otherwise only the datasets listed.",
    )
    datasets = models.ManyToManyField(
        Dataset,
        blank=True,
        related_name="api_tokens",
        help_text="Only these datasets (of those the user may change), when the token is limited.",
    )

    class Meta:
        db_table = qualified(PIPELINE, "api_token")
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})"

    def is_usable(self, now) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    def reaches(self, dataset: Dataset) -> bool:
        """Whether the token's limit lets it use `dataset` (the user's own rights aside)."""
        if self.all_datasets:
            return True
        return self.datasets.filter(pk=dataset.pk).exists()


class DeadLetter(models.Model):
    """A task message that crashed its worker ATLAS_MAX_DELIVERIES times, set aside.

    acks_late with reject_on_worker_lost puts a message back on the queue whenever the
    worker running it dies, so a task that kills its worker would be delivered forever.
    `orchestration.dead_letters.AtlasTask` counts the deliveries that started and never ended;
    past the bound the task is not run but recorded here (and acknowledged), and the
    run or batch it was working on is failed with the reason.
    """

    task_id = models.CharField(max_length=255, unique=True)
    task_name = models.CharField(max_length=255)
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    queue = models.CharField(max_length=255, blank=True)
    deliveries = models.PositiveIntegerField(
        help_text="Deliveries whose worker died under them before it was set aside."
    )
    last_error = models.TextField(blank=True)
    first_seen_at = models.DateTimeField(help_text="When its first delivery started.")
    last_seen_at = models.DateTimeField(help_text="When it was set aside.")
    run = models.ForeignKey(
        Run,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="dead_letters",
        help_text="The run it was working on, failed with the reason.",
    )

    class Meta:
        db_table = qualified(PIPELINE, "dead_letter")
        ordering = ["-last_seen_at"]
        indexes = [models.Index(fields=["task_name", "-last_seen_at"], name="dead_letter_task_idx")]

    def __str__(self) -> str:
        return f"{self.task_name}[{self.task_id}] after {self.deliveries} deliveries"


# --- Alerts: rules stewards set, the alerts they open, the notifications sent ---------------


class AlertKind(models.TextChoices):
    RUN_FAILED = "run_failed", "A dataset's latest run of a kind failed"
    STALE = "stale", "A dataset is past its freshness target"
    QUALITY_BELOW = "quality_below", "Quality score below the dataset's threshold"
    QUARANTINE_SHARE = "quarantine_share", "Quarantine share of the last chart run above X%"
    DEAD_LETTERS = "dead_letters", "Dead letters present"
    SUGGESTION_WAITING = "suggestion_waiting", "A PII suggestion waiting more than N days"
    DEFAULT_PARTITION_ROWS = "default_partition_rows", "Rows in a DEFAULT partition"
    WORKER_SILENT = "worker_silent", "No worker seen for N minutes"
    BEAT_SILENT = "beat_silent", "The scheduler (beat) not seen for N minutes"


# The kinds whose condition is the platform's, not a dataset's: a rule of these kinds names
# no dataset, and its alert none either.
PLATFORM_ALERT_KINDS = frozenset(
    {
        AlertKind.DEAD_LETTERS,
        AlertKind.DEFAULT_PARTITION_ROWS,
        AlertKind.WORKER_SILENT,
        AlertKind.BEAT_SILENT,
    }
)


class ChannelKind(models.TextChoices):
    EMAIL = "email", "E-mail"
    WEBHOOK = "webhook", "Webhook"


class AlertChannel(models.Model):
    """Where notifications go: e-mail recipients, or a webhook URL (JSON POST)."""

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=ChannelKind)
    recipients = ArrayField(
        models.EmailField(),
        default=list,
        blank=True,
        help_text="E-mail: the addresses, separated by commas.",
    )
    url = models.URLField(max_length=500, blank=True, help_text="Webhook: the URL to POST to.")
    slack_compatible = models.BooleanField(
        default=False, help_text='Webhook: send {"text": ...} (Slack, Mattermost, Teams).'
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        db_table = qualified(PIPELINE, "alert_channel")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.kind == ChannelKind.EMAIL and not self.recipients:
            raise ValidationError({"recipients": "An e-mail channel needs recipients."})
        if self.kind == ChannelKind.WEBHOOK and not self.url:
            raise ValidationError({"url": "A webhook channel needs a URL."})
        if self.kind == ChannelKind.WEBHOOK and not webhook_host_allowed(self.url):
            listed = ", ".join(settings.ATLAS_WEBHOOK_HOSTS) or "none"
            raise ValidationError(
                {
                    "url": f"{urlsplit(self.url).hostname!r} is not a host webhooks may be "
                    f"sent to; an operator lists those in ATLAS_WEBHOOK_HOSTS (now: {listed})."
                }
            )


def webhook_host_allowed(url: str) -> bool:
    """Whether a webhook URL's host is one an operator listed in ATLAS_WEBHOOK_HOSTS."""
    host = (urlsplit(url).hostname or "").lower()
    return bool(host) and host in settings.ATLAS_WEBHOOK_HOSTS


class AlertRule(models.Model):
    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=32, choices=AlertKind)
    dataset = models.ForeignKey(
        Dataset,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="alert_rules",
        help_text="Blank: every active dataset.",
    )
    run_kind = models.CharField(
        max_length=32,
        choices=RunKind,
        blank=True,
        help_text="Run failed: the kind of run watched (blank: any kind).",
    )
    threshold_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal(0)), MaxValueValidator(Decimal(100))],
        help_text="Quarantine share: alert above this percentage.",
    )
    drop_points = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0.01")), MaxValueValidator(Decimal(100))],
        help_text="Quality score: also alert when the latest score fell by more than this "
        "many points (of 100) from the one before.",
    )
    wait_days = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="PII suggestion waiting: alert when one has waited longer than this.",
    )
    silent_minutes = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(2)],
        help_text="Worker or beat silent: alert when none was seen for this long.",
    )
    repeat_interval = models.DurationField(
        default=timedelta(hours=4),
        help_text="While the condition holds, notify again at most this often.",
    )
    is_active = models.BooleanField(default=True)
    channels = models.ManyToManyField(AlertChannel, related_name="rules")

    class Meta:
        db_table = qualified(PIPELINE, "alert_rule")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.kind == AlertKind.QUARANTINE_SHARE and self.threshold_percent is None:
            raise ValidationError({"threshold_percent": "This kind needs a percentage."})
        if self.kind == AlertKind.SUGGESTION_WAITING and self.wait_days is None:
            raise ValidationError({"wait_days": "This kind needs a number of days."})
        if (
            self.kind in (AlertKind.WORKER_SILENT, AlertKind.BEAT_SILENT)
            and self.silent_minutes is None
        ):
            raise ValidationError({"silent_minutes": "This kind needs a number of minutes."})
        if self.kind in PLATFORM_ALERT_KINDS and self.dataset_id is not None:
            raise ValidationError(
                {"dataset": "This kind watches the whole platform: leave the dataset blank."}
            )
        if self.repeat_interval is not None and self.repeat_interval <= timedelta(0):
            raise ValidationError({"repeat_interval": "Give a positive interval."})


class AlertState(models.TextChoices):
    OPEN = "open", "Open"
    RESOLVED = "resolved", "Resolved"


class Alert(models.Model):
    """A rule's condition holding for one dataset (none: a platform-wide condition)."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    dataset = models.ForeignKey(
        Dataset, on_delete=models.CASCADE, null=True, blank=True, related_name="alerts"
    )
    state = models.CharField(max_length=16, choices=AlertState, default=AlertState.OPEN)
    opened_at = models.DateTimeField()
    last_notified_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    summary = models.CharField(max_length=500, help_text="Counts and names only, never values.")

    class Meta:
        db_table = qualified(PIPELINE, "alert")
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "dataset"],
                condition=models.Q(state="open"),
                nulls_distinct=False,
                name="alert_one_open_per_rule_dataset",
            )
        ]

    def __str__(self) -> str:
        return self.summary


class NotificationKind(models.TextChoices):
    OPENED = "opened", "Opened"
    REPEAT = "repeat", "Repeat"
    RESOLVED = "resolved", "Resolved"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed (retried later)"
    GAVE_UP = "gave_up", "Gave up"


class AlertSubscription(models.Model):
    """A person's own alerts by e-mail: those of one dataset they follow, or (no dataset)
    those of every dataset they own. Any active rule's alerts on the dataset are sent."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alert_subscriptions"
    )
    dataset = models.ForeignKey(
        Dataset,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="alert_subscriptions",
        help_text="Blank: every dataset you own, now and later.",
    )
    kinds = ArrayField(
        models.CharField(max_length=32, choices=AlertKind),
        default=list,
        blank=True,
        help_text="The kinds of alert wanted; none chosen: every kind.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = qualified(PIPELINE, "alert_subscription")
        ordering = ["user", "dataset"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "dataset"],
                nulls_distinct=False,
                name="alert_subscription_one_per_user_dataset",
            )
        ]

    def __str__(self) -> str:
        target = self.dataset.slug if self.dataset_id else "datasets they own"
        return f"{self.user} follows {target}"

    def wants(self, kind: str) -> bool:
        return not self.kinds or kind in self.kinds


class Notification(models.Model):
    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="notifications")
    channel = models.ForeignKey(
        AlertChannel, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    subscriber = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        help_text="A person's own subscription, by e-mail (no channel then).",
    )
    kind = models.CharField(max_length=16, choices=NotificationKind)
    subject = models.CharField(max_length=300)
    body = models.TextField(help_text="Counts, names and a link only.")
    target = models.CharField(
        max_length=500, help_text="The recipients, or the webhook URL's host."
    )
    status = models.CharField(max_length=16, choices=DeliveryStatus, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField()
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)

    class Meta:
        db_table = qualified(PIPELINE, "notification")
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(channel__isnull=False) | models.Q(subscriber__isnull=False),
                name="notification_has_a_channel_or_subscriber",
            )
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(status__in=["pending", "failed"]),
                name="notification_due_idx",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} → {self.target}: {self.status}"


class Heartbeat(models.Model):
    """When a worker or the scheduler (beat) last said it was alive (orchestration.liveness).

    In PostgreSQL, not Redis: it must outlive a broker restart, and be read by whoever
    evaluates alerts when the other side went silent.
    """

    component = models.CharField(max_length=16)  # "worker" or "beat"
    node = models.CharField(max_length=200, help_text="The process's node name.")
    seen_at = models.DateTimeField()

    class Meta:
        db_table = qualified(PIPELINE, "heartbeat")
        ordering = ["component", "node"]
        constraints = [
            models.UniqueConstraint(fields=["component", "node"], name="heartbeat_one_per_node")
        ]

    def __str__(self) -> str:
        return f"{self.component} {self.node} at {self.seen_at:%Y-%m-%d %H:%M:%S}"


class ChunkStatus(models.TextChoices):
    CLAIMED = "claimed", "Claimed"
    DONE = "done", "Done"


class RunChunk(models.Model):
    """One chunk of a promotion shared by several workers (chart.shared_promotion).

    A chunk is the raw records of its dataset with ids in (after_id, last_id]. Whoever
    reads the next records above the run's last chunk records them here as a chunk it
    claims; a claim lasts until `lease_until`, so a dead claimant's chunk is claimed
    again by another worker. `done` commits with the chunk's records and the watermark.
    """

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="chunks")
    seq = models.IntegerField(help_text="Its place in the run, from 0: the order of commits.")
    after_id = models.BigIntegerField()
    last_id = models.BigIntegerField()
    rows = models.IntegerField(default=0)
    status = models.CharField(max_length=16, choices=ChunkStatus, default=ChunkStatus.CLAIMED)
    claimant = models.CharField(max_length=200, blank=True)
    lease_until = models.DateTimeField()
    attempts = models.IntegerField(default=1)
    committed_by = models.CharField(max_length=200, blank=True)
    committed_at = models.DateTimeField(null=True, blank=True)
    # What the chunk's commit counted (superseded, failing, PII found), summed at the end.
    result = models.JSONField(default=dict, blank=True)

    class Meta:
        db_table = qualified(PIPELINE, "run_chunk")
        ordering = ["run", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["run", "seq"], name="run_chunk_run_seq"),
        ]

    def __str__(self) -> str:
        return f"run {self.run_id} chunk {self.seq} ({self.after_id}, {self.last_id}]"
