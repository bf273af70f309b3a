from django.contrib.postgres.fields import ArrayField
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from atlas_site.schemas import COMPLIANCE, qualified
from governance.compliance.regex_safety import check_pattern


class MaskingRule(models.TextChoices):
    NONE = "none", "Shown as is"
    PARTIAL = "partial", "Partial: keep the last 4 characters"
    FULL = "full", "Full: replace every character"
    HASH = "hash", "Hash: a keyed SHA-256 digest (joinable, not readable)"
    REDACT = "redact", "Redact: replace with [REDACTED]"


class ClassificationLevel(models.Model):
    """How sensitive a field is, and what that means for its values downstream."""

    name = models.CharField(max_length=64, unique=True)
    rank = models.PositiveSmallIntegerField(
        unique=True,
        help_text="Sensitivity rank: higher is more sensitive; each rank belongs to one level.",
    )
    description = models.TextField(blank=True)
    requires_encryption = models.BooleanField(
        default=False, help_text="Values are encrypted in chart; revealing them is audited."
    )
    masking = models.CharField(
        max_length=16,
        choices=MaskingRule,
        default=MaskingRule.NONE,
        help_text="How values are shown to people without clearance for this level.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = qualified(COMPLIANCE, "classification_level")
        ordering = ["rank"]
        permissions = [
            (
                "lower_classification",
                "Can lower or remove a field's classification (with a reason, audited)",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} (rank {self.rank})"


class PiiType(models.TextChoices):
    EMAIL = "email", "Email address"
    PHONE = "phone", "Phone number"
    US_SSN = "us_ssn", "US Social Security number"
    PAYMENT_CARD = "payment_card", "Payment card number"
    IBAN = "iban", "IBAN"
    IPV4 = "ipv4", "IPv4 address"
    IPV6 = "ipv6", "IPv6 address"
    DATE_OF_BIRTH = "date_of_birth", "Date of birth"
    PERSON_NAME = "person_name", "Person name"
    UK_NINO = "uk_nino", "UK National Insurance number"
    FR_NIR = "fr_nir", "French social security number (NIR)"
    DE_TAX_ID = "de_tax_id", "German tax id (Steuer-IdNr)"
    NL_BSN = "nl_bsn", "Dutch citizen service number (BSN)"
    ES_DNI_NIE = "es_dni_nie", "Spanish DNI / NIE"
    IT_FISCAL_CODE = "it_fiscal_code", "Italian codice fiscale"
    EU_VAT = "eu_vat", "EU VAT number"
    OTHER = "other", "Other"


class PiiValidator(models.TextChoices):
    NONE = "none", "None: the regex match is enough"
    LUHN = "luhn", "Luhn checksum (payment cards)"
    IBAN_MOD97 = "iban_mod97", "ISO 13616 mod-97 (IBAN)"
    US_SSN = "us_ssn", "SSN area/group/serial rules"
    IPV4 = "ipv4", "IPv4 address parsing"
    IPV6 = "ipv6", "IPv6 address parsing"
    EMAIL_DOMAIN = "email_domain", "Plausible email domain"
    PHONE = "phone", "A valid number for its region (libphonenumber)"
    DATE = "date", "A real calendar date in the past"
    UK_NINO = "uk_nino", "HMRC allocation rules (National Insurance number)"
    FR_NIR = "fr_nir", "NIR key, mod 97"
    DE_TAX_ID = "de_tax_id", "Steuer-IdNr check digit (ISO 7064 mod 11,10)"
    NL_BSN = "nl_bsn", "BSN 11-proof"
    ES_DNI_NIE = "es_dni_nie", "DNI / NIE check letter"
    IT_FISCAL_CODE = "it_fiscal_code", "Codice fiscale check character"
    EU_VAT = "eu_vat", "The member state's VAT check"


class PiiPattern(models.Model):
    """A steward-maintained detector: a regex candidate confirmed by a validator."""

    name = models.CharField(max_length=100, unique=True)
    pii_type = models.CharField(max_length=32, choices=PiiType)
    regex = models.TextField(
        help_text="Python/RE2 syntax. Must compile, must not match empty text, and must run "
        "in linear time (no backreferences, lookarounds or nested unbounded repeats)."
    )
    validator = models.CharField(max_length=32, choices=PiiValidator, default=PiiValidator.NONE)
    context_words = ArrayField(
        models.CharField(max_length=64),
        default=list,
        blank=True,
        help_text="Words near a match that raise confidence, comma separated.",
    )
    confidence = models.DecimalField(
        max_digits=3,
        decimal_places=2,
        default=0.8,
        validators=[MinValueValidator(0), MaxValueValidator(1)],
        help_text="Confidence of a validated match without context words (0 to 1).",
    )
    min_confidence = models.DecimalField(
        max_digits=3,
        decimal_places=2,
        default=0.5,
        validators=[MinValueValidator(0), MaxValueValidator(1)],
        help_text="Threshold: matches below this confidence are not reported.",
    )
    enabled = models.BooleanField(default=True)
    default_classification = models.ForeignKey(
        ClassificationLevel,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="pii_patterns",
        help_text="Level suggested for a field where this PII is found.",
    )
    description = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = qualified(COMPLIANCE, "pii_pattern")
        ordering = ["pii_type", "name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(confidence__gte=0, confidence__lte=1),
                name="pii_pattern_confidence_0_1",
            ),
            models.CheckConstraint(
                condition=models.Q(min_confidence__gte=0, min_confidence__lte=1),
                name="pii_pattern_min_confidence_0_1",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:

        check_pattern(self.regex, field="regex")


class AuditAction(models.TextChoices):
    CREATE = "create", "Created"
    UPDATE = "update", "Changed"
    DELETE = "delete", "Deleted"
    LOGIN = "login", "Logged in"
    LOGIN_FAILED = "login_failed", "Login failed"
    LOGOUT = "logout", "Logged out"
    REVEAL = "reveal", "Revealed a protected value"
    RUN = "run", "Ran a pipeline step"
    ACTION = "action", "Other action"


class AuditLog(models.Model):
    """Append-only record of who changed what. Partitioned by quarter of `at`.

    The database refuses UPDATE, DELETE and TRUNCATE on this table (triggers created
    in its migration). `actor_id` is a plain value, not a foreign key, so that the
    entry outlives the user it names.

    The database also sets `id`, `at`, `prev_hash` and `hash` of every new entry (the
    trigger `seal_entry`, migration 0009), whatever the client sends: `at` is the
    statement's time, ids come in chain order, and each entry is chained by sha256 to
    the one before it in its quarter (`governance.compliance.audit_chain`;
    `manage.py verify_audit_log` checks the chain).
    """

    id = models.BigAutoField(primary_key=True)
    at = models.DateTimeField(db_default=models.functions.Now())
    actor_id = models.BigIntegerField(null=True, blank=True)
    actor = models.CharField(max_length=150, help_text="Username, or the system component.")
    action = models.CharField(max_length=32, choices=AuditAction)
    object_type = models.CharField(max_length=100, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=300, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    detail = models.TextField(blank=True)
    # The db_default is a placeholder the trigger replaces; having one makes Django read
    # the stored values back (RETURNING), as it does `id` and `at`.
    prev_hash = models.BinaryField(
        db_default=b"",
        editable=False,
        help_text="sha256 of the entry before it in its quarter (set by the database).",
    )
    hash = models.BinaryField(
        db_default=b"",
        editable=False,
        help_text="sha256 of prev_hash and this entry (set by the database).",
    )

    class Meta:
        db_table = qualified(COMPLIANCE, "audit_log")
        ordering = ["-at"]
        indexes = [
            models.Index(fields=["object_type", "object_id"], name="audit_log_object_idx"),
            models.Index(fields=["actor"], name="audit_log_actor_idx"),
        ]
        verbose_name = "audit log entry"
        verbose_name_plural = "audit log"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor} {self.action} {self.object_repr}"


class SuggestionStatus(models.TextChoices):
    OPEN = "open", "Open"
    ACCEPTED = "accepted", "Accepted"
    REJECTED = "rejected", "Rejected"


class ClassificationSuggestion(models.Model):
    """PII found in a field that is not classified, raised to stewards with its evidence.

    A rejected suggestion is not raised again for the field unless the evidence
    changes: other PII types, or a markedly higher hit ratio (see `evidence_key`).
    """

    dataset_field = models.ForeignKey(
        "pipeline.DatasetField", on_delete=models.CASCADE, related_name="classification_suggestions"
    )
    suggested_level = models.ForeignKey(
        ClassificationLevel, on_delete=models.PROTECT, related_name="+"
    )
    pii_types = ArrayField(models.CharField(max_length=32), default=list)
    values_scanned = models.BigIntegerField(default=0)
    values_with_pii = models.BigIntegerField(default=0, help_text="Values holding any PII.")
    hits_by_type = models.JSONField(
        default=dict, blank=True, help_text="Values holding each PII type (a value may hold two)."
    )
    examples = models.JSONField(
        default=list,
        blank=True,
        help_text='Masked excerpts, each {"pii_type": ..., "excerpt": ...} (plain text before).',
    )
    evidence_key = models.CharField(
        max_length=200, help_text="PII types and hit-ratio band; a change re-raises a rejection."
    )
    status = models.CharField(
        max_length=16, choices=SuggestionStatus, default=SuggestionStatus.OPEN
    )
    run = models.ForeignKey(
        "pipeline.Run", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    decided_by = models.CharField(max_length=150, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = qualified(COMPLIANCE, "classification_suggestion")
        ordering = ["-updated_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["dataset_field"],
                condition=models.Q(status="open"),
                name="one_open_suggestion_per_field",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.dataset_field}: {self.suggested_level.name}?"

    @property
    def hit_ratio(self) -> float:
        """The share of values that held PII, of whatever type."""
        return self.values_with_pii / self.values_scanned if self.values_scanned else 0.0

    def examples_by_type(self) -> list[tuple[str, str]]:
        """(PII type, masked excerpt) of each example; "" for those stored without a type."""
        return [
            (example.get("pii_type", ""), example.get("excerpt", ""))
            if isinstance(example, dict)
            else ("", str(example))
            for example in self.examples
        ]
