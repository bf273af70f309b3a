"""The six quality dimensions and their starting weights (sum 1). Idempotent."""

from decimal import Decimal

from django.apps import apps as global_apps

DIMENSIONS = [
    ("completeness", "0.2500", "Required values are present."),
    ("validity", "0.2500", "Values have the right type, pattern and allowed values."),
    ("accuracy", "0.1500", "Values are within ranges and reference lists."),
    ("consistency", "0.1500", "Fields agree with each other (e.g. start <= end)."),
    ("uniqueness", "0.1000", "Business keys are not duplicated."),
    ("timeliness", "0.1000", "Records arrive within the dataset's freshness target."),
]

assert sum(Decimal(weight) for _, weight, _ in DIMENSIONS) == 1


def ensure_dimensions(apps=global_apps) -> None:
    QualityDimension = apps.get_model("quality", "QualityDimension")
    if QualityDimension.objects.exists():
        return
    QualityDimension.objects.bulk_create(
        QualityDimension(code=code, weight=Decimal(weight), description=description)
        for code, weight, description in DIMENSIONS
    )
