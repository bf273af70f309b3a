from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from atlas_site.schemas import QUALITY, qualified

# The kinds and dimensions live below the models and the rules (kinds.py); they stay
# importable from here, as the fields' choices.
from governance.quality.kinds import (
    DIMENSION_OF_KIND,
    DimensionCode,
    RuleKind,
    RuleOrigin,
    validate_steward_rule,
)


class QualityDimension(models.Model):
    """One of the six dimensions. Weights are never negative and always sum to 1.

    The sum is checked by a deferred constraint trigger at commit (see the migration),
    so weights are changed together, in one transaction (`services.set_weights`).
    """

    code = models.CharField(max_length=16, choices=DimensionCode, unique=True)
    description = models.TextField(blank=True)
    weight = models.DecimalField(
        max_digits=5,
        decimal_places=4,
        validators=[MinValueValidator(0), MaxValueValidator(1)],
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = qualified(QUALITY, "dimension")
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(weight__gte=0, weight__lte=1), name="dimension_weight_0_1"
            ),
        ]

    def __str__(self) -> str:
        return self.get_code_display()


class QualityRule(models.Model):
    dataset = models.ForeignKey(
        "pipeline.Dataset", on_delete=models.CASCADE, related_name="quality_rules"
    )
    field_name = models.CharField(max_length=63, blank=True)
    dimension = models.ForeignKey(QualityDimension, on_delete=models.PROTECT, related_name="rules")
    kind = models.CharField(max_length=32, choices=RuleKind)
    parameters = models.JSONField(default=dict, blank=True)
    origin = models.CharField(max_length=16, choices=RuleOrigin, default=RuleOrigin.STEWARD)
    description = models.TextField(blank=True)
    is_active = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = qualified(QUALITY, "rule")
        ordering = ["dataset", "field_name", "kind"]

    def __str__(self) -> str:
        # The dataset's slug, not its id: this names the rule in lists, charts and logs.
        return f"{self.dataset.slug}.{self.field_name or '*'} {self.kind}"

    def clean(self) -> None:
        # Found by fuzzing: an empty box (or JSON null) reached the NOT NULL column as
        # NULL and the admin answered 500. No parameters is {}; anything else an object.
        if self.parameters is None:
            self.parameters = {}
        elif not isinstance(self.parameters, dict):
            raise ValidationError(
                {"parameters": 'Parameters are a JSON object, e.g. {} or {"min": 0}.'}
            )
        if self.origin == RuleOrigin.STEWARD and self.dataset_id:
            validate_steward_rule(self)
        expected = DIMENSION_OF_KIND.get(self.kind)
        if expected and self.dimension_id and self.dimension.code != expected:
            raise ValidationError(
                {"dimension": f"a {self.kind} rule measures {expected}, not {self.dimension.code}"}
            )


class CheckResult(models.Model):
    """What one rule found in one run."""

    run = models.ForeignKey("pipeline.Run", on_delete=models.CASCADE, related_name="check_results")
    rule = models.ForeignKey(QualityRule, on_delete=models.CASCADE, related_name="results")
    passed_count = models.BigIntegerField(default=0)
    failed_count = models.BigIntegerField(default=0)
    failing_examples = models.JSONField(default=list, blank=True, help_text="Masked examples.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = qualified(QUALITY, "check_result")
        ordering = ["run", "rule"]
        constraints = [
            models.UniqueConstraint(fields=["run", "rule"], name="check_result_run_rule"),
        ]

    def __str__(self) -> str:
        return f"run {self.run_id} rule {self.rule_id}: {self.passed_count}/{self.failed_count}"


class QualityScore(models.Model):
    """A run's scores, with the weights used, so history stays reproducible."""

    run = models.OneToOneField(
        "pipeline.Run", on_delete=models.CASCADE, related_name="quality_score"
    )
    dataset = models.ForeignKey(
        "pipeline.Dataset", on_delete=models.CASCADE, related_name="quality_scores"
    )
    overall = models.DecimalField(max_digits=5, decimal_places=4, null=True)
    dimension_scores = models.JSONField(
        default=dict, help_text="{dimension: score or null when nothing was measured}."
    )
    weights_used = models.JSONField(default=dict)
    below_threshold = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = qualified(QUALITY, "score")
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["dataset", "-created_at"], name="score_dataset_idx")]

    def __str__(self) -> str:
        return f"{self.dataset_id} run {self.run_id}: {self.overall}"
