"""What a PII pattern would match, before it is saved: the pattern-impact preview.

A steward editing a pattern sees, on a recent bounded sample of records, which values
the edited pattern would match and which it would stop matching compared with the
saved one, per dataset and field, with masked excerpts only.

Where the values come from (chart.selectors.impact_sample, the layer that owns those
tables): the newest chart records and the newest quarantined records (by id, read
backwards along their primary keys, so the sample costs the same on ten rows or ten
million), and for each the raw record it came from. The raw payload
is read rather than chart's `data` because chart holds values after protection: a
value an existing pattern matched is already masked there, an encrypted one is a
token, so scanning chart's copy could never show what a pattern stops matching. The
raw values are what the promotion scans; nothing of them leaves this module except
counts and masked excerpts.

How a value is judged: with the scanner the promotion uses (governance.compliance.pii.scanner), over
every enabled pattern, once with the saved version of this pattern and once with the
edited one, so overlaps with other patterns resolve as they will in a run. A value
counts for this pattern when the scan attributes at least one finding to it.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from governance.compliance.models import PiiPattern
from governance.compliance.pii.masking import EXCERPT_CONTEXT, masked_excerpt
from governance.compliance.pii.scanner import (
    SCAN_FIELDS,
    Match,
    PatternSet,
    compile_pattern,
    payload_texts,
    scan_value,
)
from governance.compliance.pii.validators import declared_phone_regions

# The sample: the newest records of each kind. Both are read by primary key, so the
# preview answers in well under a second however large the tables are (bench/previews.py).
CHART_SAMPLE = 2000
QUARANTINE_SAMPLE = 1000
EXAMPLES_PER_ROW = 4
# The id the pattern under preview carries in both scans, to tell its findings apart
# from those of the other patterns (database ids are positive).
PREVIEWED = -1

SOURCE_CHART = "chart"
SOURCE_QUARANTINE = "quarantine"


def _spec(pattern: PiiPattern, *, pattern_id: int | None) -> dict[str, Any]:
    # The scanner's own columns; the id is the preview's, not the row's.
    return {name: pattern_id if name == "id" else getattr(pattern, name) for name in SCAN_FIELDS}


def _pattern_sets(
    candidate: PiiPattern, saved: PiiPattern | None
) -> tuple[PatternSet, PatternSet, PatternSet]:
    """The enabled patterns with the saved version, with the edited one, and both alone.

    A disabled version takes part in no scan: that is what saving it would do.
    Raises governance.compliance.pii.InvalidPatternError when the edited pattern cannot be compiled.
    """
    others = PiiPattern.objects.filter(enabled=True).order_by("id")
    if saved is not None:
        others = others.exclude(pk=saved.pk)
    other_specs = [_spec(pattern, pattern_id=pattern.pk) for pattern in others]
    old = [compile_pattern(_spec(saved, pattern_id=PREVIEWED))] if saved and saved.enabled else []
    new = [compile_pattern(_spec(candidate, pattern_id=PREVIEWED))] if candidate.enabled else []
    compiled_others = [compile_pattern(spec) for spec in other_specs]
    return (
        PatternSet(compiled_others + old),
        PatternSet(compiled_others + new),
        PatternSet(old + new),
    )


@dataclass(frozen=True)
class ImpactSample:
    """The values a preview scans: raw payloads of the newest chart and quarantined records.

    (dataset id, raw payload) pairs, newest first, read by the layer that owns those
    tables (chart.selectors.impact_sample); the limits they were read with.
    """

    chart: list[tuple[int, Any]]
    quarantine: list[tuple[int, Any]]
    # The sampled datasets' slugs, and their fields whose level requires encryption
    # (the words around such a value are as secret as the value: no context is shown).
    dataset_slugs: dict[int, str] = field(default_factory=dict)
    restricted_fields: set[tuple[int, str]] = field(default_factory=set)
    # The countries the sampled datasets, and those of their fields that have their own,
    # declare: phone numbers are read as a run reads them (governance.pipeline.models).
    countries: dict[int, str] = field(default_factory=dict)
    field_countries: dict[tuple[int, str], str] = field(default_factory=dict)
    chart_limit: int = CHART_SAMPLE
    quarantine_limit: int = QUARANTINE_SAMPLE


@dataclass
class _FieldImpact:
    source: str
    dataset_id: int
    field: str
    before: int = 0
    after: int = 0
    gained: int = 0
    lost: int = 0
    examples: list[dict[str, str]] = field(default_factory=list)

    def add_example(self, change: str, excerpt: str) -> None:
        # Gained and lost values first: they are what the steward decides on.
        if len(self.examples) < EXAMPLES_PER_ROW:
            self.examples.append({"change": change, "excerpt": excerpt})
        elif change != "kept":
            for index, example in enumerate(self.examples):
                if example["change"] == "kept":
                    self.examples[index] = {"change": change, "excerpt": excerpt}
                    return


def _excerpt(text: str, found: Match, everything: list[Match], *, restricted: bool) -> str:
    others = [(other.start, other.end) for other in everything if other is not found]
    return masked_excerpt(
        text,
        found.start,
        found.end,
        pii_type=found.pii_type,
        other_spans=others,
        # The words around a value of a field that must be encrypted are as secret as
        # the value: only the masked PII itself is shown.
        context=0 if restricted else EXCERPT_CONTEXT,
    )


def preview_pattern_impact(
    *, candidate: PiiPattern, saved: PiiPattern | None, sample: ImpactSample
) -> dict[str, Any]:
    """What `candidate` (an edited, unsaved pattern) would match compared with `saved`.

    `saved` is the stored pattern being edited, None for a new one. The candidate's
    regex must already have passed PiiPattern.clean (the admin form checks it).
    Returns JSON-ready data: the sample's size, totals, and one row per source,
    dataset and field where either version matched, each with masked examples.
    """
    old_set, new_set, probe = _pattern_sets(candidate, saved)
    restricted = sample.restricted_fields

    impacts: dict[tuple[str, int, str], _FieldImpact] = {}
    values_scanned = 0
    for source, rows in ((SOURCE_CHART, sample.chart), (SOURCE_QUARANTINE, sample.quarantine)):
        for dataset_id, payload in rows:
            for name, text in payload_texts(payload):
                values_scanned += 1
                # Most values match neither version: one RE2 set pass rules them out.
                if not probe.candidates(text.encode("utf-8", "replace")):
                    continue
                country = sample.field_countries.get((dataset_id, name)) or sample.countries.get(
                    dataset_id
                )
                with declared_phone_regions((country,) if country else None):
                    old = scan_value(text, old_set, field_name=name)
                    new = scan_value(text, new_set, field_name=name)
                old_hits = [m for m in old if m.pattern_id == PREVIEWED]
                new_hits = [m for m in new if m.pattern_id == PREVIEWED]
                if not old_hits and not new_hits:
                    continue
                key = (source, dataset_id, name)
                impact = impacts.get(key)
                if impact is None:
                    impact = impacts[key] = _FieldImpact(source, dataset_id, name)
                secret = (dataset_id, name) in restricted
                impact.before += bool(old_hits)
                impact.after += bool(new_hits)
                if new_hits:
                    change = "kept" if old_hits else "gained"
                    impact.gained += change == "gained"
                    impact.add_example(change, _excerpt(text, new_hits[0], new, restricted=secret))
                else:
                    impact.lost += 1
                    impact.add_example("lost", _excerpt(text, old_hits[0], old, restricted=secret))

    datasets = sample.dataset_slugs
    rows = [
        {
            "source": impact.source,
            "dataset": datasets.get(impact.dataset_id, str(impact.dataset_id)),
            "field": impact.field,
            "before": impact.before,
            "after": impact.after,
            "gained": impact.gained,
            "lost": impact.lost,
            "examples": impact.examples,
        }
        for impact in sorted(
            impacts.values(),
            key=lambda i: (-(i.gained + i.lost), i.source, datasets.get(i.dataset_id, ""), i.field),
        )
    ]
    totals = defaultdict(int)
    for row in rows:
        for name in ("before", "after", "gained", "lost"):
            totals[name] += row[name]
    return {
        "pattern": {
            "name": candidate.name,
            "pii_type": candidate.pii_type,
            "enabled": candidate.enabled,
            "is_new": saved is None,
        },
        "sample": {
            "chart_records": len(sample.chart),
            "quarantined_records": len(sample.quarantine),
            "values_scanned": values_scanned,
            "chart_limit": sample.chart_limit,
            "quarantine_limit": sample.quarantine_limit,
        },
        "totals": {name: totals[name] for name in ("before", "after", "gained", "lost")},
        "rows": rows,
    }
