"""The PII pattern impact preview: what an edited pattern would match in recent chart and
quarantined records, gained and lost against the saved one, with masked excerpts only."""

import json

import pytest
from django.urls import reverse

from chart.models import ChartRecord, QuarantinedRecord
from chart.selectors import impact_sample
from chart.services import promote_to_chart
from governance.compliance.impact import preview_pattern_impact
from governance.compliance.models import AuditLog, PiiPattern

IMPACT_URL = "admin:compliance_piipattern_impact"
SSN = "US Social Security number"


@pytest.fixture
def promoted(customers, land):
    """Chart and quarantined records of `customers` holding SSNs and employee ids."""
    land(
        customers,
        [
            {"id": "1", "tier": "gold", "ssn": "123-45-6789", "notes": "badge EMP-123456"},
            {"id": "2", "tier": "gold", "ssn": "234-56-7890", "notes": "ssn 345678901"},
            {"id": "3", "tier": "silver", "notes": "nothing to see"},
            # Fails its contract (tier), so it is quarantined with its raw payload.
            {"id": "4", "tier": "bronze", "notes": "badge EMP-654321, ssn 456-78-9012"},
        ],
    )
    promote_to_chart(dataset=customers, triggered_by="test")
    assert ChartRecord.objects.count() == 3
    assert QuarantinedRecord.objects.count() == 1
    return customers


def edited(name: str, **changes) -> tuple[PiiPattern, PiiPattern]:
    saved = PiiPattern.objects.get(name=name)
    candidate = PiiPattern.objects.get(name=name)
    for field, value in changes.items():
        setattr(candidate, field, value)
    return candidate, saved


def rows_by_key(preview) -> dict[tuple[str, str], dict]:
    return {(row["source"], row["field"]): row for row in preview["rows"]}


@pytest.mark.django_db
def test_a_new_pattern_gains_every_value_it_matches(promoted):
    candidate = PiiPattern(
        name="Employee id", pii_type="other", regex=r"\bEMP-\d{6}\b", confidence=0.8
    )
    preview = preview_pattern_impact(candidate=candidate, saved=None, sample=impact_sample())
    assert preview["sample"]["chart_records"] == 3
    assert preview["sample"]["quarantined_records"] == 1
    assert preview["totals"] == {"before": 0, "after": 2, "gained": 2, "lost": 0}
    rows = rows_by_key(preview)
    assert rows[("chart", "notes")]["gained"] == 1
    assert rows[("chart", "notes")]["dataset"] == "orders"
    assert rows[("quarantine", "notes")]["gained"] == 1
    excerpts = [e["excerpt"] for row in preview["rows"] for e in row["examples"]]
    assert excerpts and all("123456" not in e and "654321" not in e for e in excerpts)
    assert any("badge" in e for e in excerpts)  # the words around the PII stay readable


@pytest.mark.django_db
def test_an_edited_pattern_shows_what_it_gains_and_loses(promoted):
    # No separators instead of dashes: dashed SSNs are lost, the bare one in the notes gained.
    candidate, saved = edited(SSN, regex=r"\b\d{9}\b")
    preview = preview_pattern_impact(candidate=candidate, saved=saved, sample=impact_sample())
    rows = rows_by_key(preview)
    assert rows[("chart", "ssn")] | {"examples": None} == {
        "source": "chart",
        "dataset": "orders",
        "field": "ssn",
        "before": 2,
        "after": 0,
        "gained": 0,
        "lost": 2,
        "examples": None,
    }
    assert rows[("chart", "notes")]["gained"] == 1
    assert rows[("quarantine", "notes")]["lost"] == 1
    assert preview["totals"] == {"before": 3, "after": 1, "gained": 1, "lost": 3}
    # ssn is a restricted (encrypted) field: only the masked value, no words around it.
    for example in rows[("chart", "ssn")]["examples"]:
        assert example["change"] == "lost"
        assert example["excerpt"].startswith("***-**-")
        assert "6789" not in example["excerpt"] and "7890" not in example["excerpt"]


@pytest.mark.django_db
def test_thresholds_and_disabling_apply_like_a_save_would(promoted):
    unchanged, saved = edited(SSN)
    assert preview_pattern_impact(candidate=unchanged, saved=saved, sample=impact_sample())[
        "totals"
    ] == {
        "before": 3,
        "after": 3,
        "gained": 0,
        "lost": 0,
    }
    # Boosted by a context word, 0.3 stays short of the 0.9 threshold anyway.
    strict, saved = edited(SSN, confidence=0.3, min_confidence=0.9)
    assert (
        preview_pattern_impact(candidate=strict, saved=saved, sample=impact_sample())["totals"][
            "after"
        ]
        == 0
    )
    disabled, saved = edited(SSN, enabled=False)
    preview = preview_pattern_impact(candidate=disabled, saved=saved, sample=impact_sample())
    assert preview["pattern"]["enabled"] is False
    assert preview["totals"]["lost"] == 3


@pytest.mark.django_db
def test_the_sample_is_bounded_to_the_newest_records(promoted):
    candidate, saved = edited(SSN, regex=r"\b\d{9}\b")
    preview = preview_pattern_impact(
        candidate=candidate, saved=saved, sample=impact_sample(chart=1, quarantine=0)
    )
    assert preview["sample"]["chart_records"] == 1
    assert preview["sample"]["quarantined_records"] == 0
    # The newest chart record is the one without any SSN.
    assert preview["rows"] == []


# --- The endpoint ---------------------------------------------------------------------------


def form_of(pattern: PiiPattern, **overrides) -> dict:
    data = {
        "name": pattern.name,
        "pii_type": pattern.pii_type,
        "regex": pattern.regex,
        "validator": pattern.validator,
        "context_words": ",".join(pattern.context_words),
        "confidence": str(pattern.confidence),
        "min_confidence": str(pattern.min_confidence),
        "enabled": "on",
        "default_classification": pattern.default_classification_id or "",
        "description": pattern.description,
        "pattern_id": pattern.pk,
    }
    data.update(overrides)
    return data


@pytest.mark.django_db
def test_the_endpoint_previews_the_posted_form_and_saves_nothing(client, officer, promoted):
    pattern = PiiPattern.objects.get(name=SSN)
    shipped = pattern.regex
    client.force_login(officer)
    audits = AuditLog.objects.count()
    response = client.post(reverse(IMPACT_URL), form_of(pattern, regex=r"\b\d{9}\b", name=""))
    assert response.status_code == 200, response.content
    assert response.json()["totals"] == {"before": 3, "after": 1, "gained": 1, "lost": 3}
    pattern.refresh_from_db()
    assert pattern.regex == shipped
    # Nothing saved; the preview itself is audited (see below).
    assert AuditLog.objects.count() == audits + 1


@pytest.mark.django_db
def test_a_preview_is_audited_with_counts_and_no_excerpt(client, officer, promoted):
    pattern = PiiPattern.objects.get(name=SSN)
    client.force_login(officer)
    regex = r"\b\d{9}\b"
    response = client.post(reverse(IMPACT_URL), form_of(pattern, regex=regex))
    assert response.status_code == 200
    preview = response.json()
    assert any(row["examples"] for row in preview["rows"])  # the answer has excerpts...

    entry = AuditLog.objects.get(object_type="compliance.piipattern", action="action")
    assert (entry.actor, entry.actor_id) == (officer.username, officer.pk)
    assert entry.object_id == str(pattern.pk) and entry.object_repr == SSN
    assert entry.after["pattern"]["regex"] == regex
    assert entry.after["pattern"]["pii_type"] == pattern.pii_type
    assert entry.after["totals"] == {"before": 3, "after": 1, "gained": 1, "lost": 3}
    assert entry.after["sample"]["chart_records"] == 3
    assert {(f["source"], f["dataset"], f["field"]) for f in entry.after["fields"]} == {
        (row["source"], row["dataset"], row["field"]) for row in preview["rows"]
    }
    assert "1 values matched (1 gained, 3 lost)" in entry.detail
    # ...the audit entry has none: no excerpt, no value of the records scanned.
    stored = json.dumps([entry.before, entry.after, entry.detail])
    assert "examples" not in stored
    for row in preview["rows"]:
        for example in row["examples"]:
            assert example["excerpt"] not in stored
    for value in ("123-45-6789", "234-56-7890", "345678901", "456-78-9012", "6789", "8901"):
        assert value not in stored


@pytest.mark.django_db
def test_a_new_pattern_preview_is_audited_and_a_refused_one_is_not(client, officer, promoted):
    client.force_login(officer)
    data = form_of(PiiPattern.objects.get(name=SSN), name="Employee id", regex=r"EMP-\d{6}")
    data.update(pii_type="other", validator="none", pattern_id="")
    assert client.post(reverse(IMPACT_URL), data).status_code == 200
    entry = AuditLog.objects.get(object_type="compliance.piipattern", action="action")
    assert entry.object_id == "" and entry.object_repr == "Employee id"
    assert entry.after["pattern"]["regex"] == r"EMP-\d{6}"
    assert entry.after["totals"]["gained"] == 2
    assert "a new PII pattern" in entry.detail

    # A preview refused by the form's checks read no record: nothing to audit.
    data.update(regex="[0-9")
    assert client.post(reverse(IMPACT_URL), data).status_code == 400
    assert AuditLog.objects.filter(object_type="compliance.piipattern").count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("regex", "[0-9", "does not compile"),
        ("regex", "(a+)+", "catastrophic backtracking"),
        ("min_confidence", "1.5", "less than or equal to 1"),
        ("validator", "crc", "not one of the available choices"),
    ],
)
def test_the_endpoint_says_why_a_pattern_cannot_be_previewed(
    client, officer, promoted, field, value, reason
):
    pattern = PiiPattern.objects.get(name=SSN)
    client.force_login(officer)
    response = client.post(reverse(IMPACT_URL), form_of(pattern, **{field: value}))
    assert response.status_code == 400
    assert reason in response.json()["error"]
    assert field in response.json()["errors"]


@pytest.mark.django_db
def test_a_new_pattern_is_previewed_without_a_pattern_id(client, officer, promoted):
    client.force_login(officer)
    data = form_of(PiiPattern.objects.get(name=SSN), name="Employee id", regex=r"EMP-\d{6}")
    data.update(pii_type="other", validator="none", pattern_id="")
    response = client.post(reverse(IMPACT_URL), data)
    assert response.status_code == 200, response.content
    assert response.json()["pattern"]["is_new"] is True
    assert response.json()["totals"]["gained"] == 2


@pytest.mark.django_db
def test_only_pattern_writers_may_preview(client, viewer, steward, officer):
    pattern = PiiPattern.objects.get(name=SSN)
    for user in (viewer, steward):
        client.force_login(user)
        assert client.post(reverse(IMPACT_URL), form_of(pattern)).status_code == 403
    client.force_login(officer)
    assert client.get(reverse(IMPACT_URL)).status_code == 405
    response = client.post(reverse(IMPACT_URL), form_of(pattern, pattern_id="999999"))
    assert response.status_code == 404


@pytest.mark.django_db
def test_the_preview_box_is_on_the_pattern_form(client, officer):
    pattern = PiiPattern.objects.get(name=SSN)
    client.force_login(officer)
    page = client.get(reverse("admin:compliance_piipattern_change", args=[pattern.pk]))
    html = page.content.decode()
    assert 'id="pattern-impact"' in html
    assert f'data-pattern-id="{pattern.pk}"' in html
    assert "compliance/js/pattern_impact.js" in html
    assert "<script>" not in html.replace("<script src=", "")


@pytest.mark.django_db
def test_a_stored_pattern_that_cannot_run_is_named(client, officer, promoted):
    # QuerySet.update skips the form's checks: the preview must say which pattern is broken.
    PiiPattern.objects.filter(name="IBAN").update(regex="(a+)+")
    client.force_login(officer)
    response = client.post(reverse(IMPACT_URL), form_of(PiiPattern.objects.get(name=SSN)))
    assert response.status_code == 400
    assert "PII pattern 'IBAN' cannot be used" in response.json()["error"]
