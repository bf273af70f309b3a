"""The compliance admin: PII patterns (checked and tried before saving), classification
levels (unique ranks, protected while in use) and the read-only audit log."""

import pytest
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from governance.compliance.models import (
    AuditLog,
    ClassificationLevel,
    PiiPattern,
)
from governance.compliance.services import TRY_SAMPLE_MAX_CHARS, record_audit, try_pattern
from governance.pipeline.models import DatasetField

TRY_URL = "admin:compliance_piipattern_try"


def pattern_form(**overrides) -> dict:
    data = {
        "name": "Employee id",
        "pii_type": "other",
        "regex": r"\bEMP-\d{6}\b",
        "validator": "none",
        "context_words": "employee",
        "confidence": "0.80",
        "min_confidence": "0.50",
        "enabled": "on",
        "default_classification": "",
        "description": "",
    }
    data.update(overrides)
    return data


def audit_of(obj):
    return AuditLog.objects.filter(
        object_type=obj._meta.label_lower, object_id=str(obj.pk)
    ).order_by("id")


# --- PII patterns: refused with the reason --------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("regex", "reason"),
    [
        ("[0-9", "does not compile"),
        ("a*", "matches the empty string"),
        ("(a+)+", "catastrophic backtracking"),
        (r"(\d)\1", "cannot run in guaranteed linear time"),
        (r"\d+(?=EUR)", "cannot run in guaranteed linear time"),
        (r"[\s\S]{1,1000}" * 8 + "Z", "counted repeats allow 8,000 repetitions"),
        (r"([\s\S]{1,30}){1,30}Z", "RE2 program of 7,264 instructions"),
    ],
    ids=[
        "invalid",
        "empty-match",
        "nested-repeat",
        "backreference",
        "lookahead",
        "large-counted-repeats",
        "large-program",
    ],
)
def test_an_unsafe_pattern_is_refused_on_its_regex_field(client, officer, regex, reason):
    client.force_login(officer)
    response = client.post(reverse("admin:compliance_piipattern_add"), pattern_form(regex=regex))
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert reason in " ".join(form.errors["regex"])
    assert reason in response.content.decode()
    assert not PiiPattern.objects.filter(name="Employee id").exists()
    assert not AuditLog.objects.filter(object_type="compliance.piipattern").exists()


@pytest.mark.django_db
def test_changing_a_saved_pattern_to_an_unsafe_regex_is_refused(client, officer):
    pattern = PiiPattern.objects.get(name="US Social Security number")
    shipped = pattern.regex
    client.force_login(officer)
    response = client.post(
        reverse("admin:compliance_piipattern_change", args=[pattern.pk]),
        pattern_form(name=pattern.name, pii_type="us_ssn", regex=r"(\d*)*-"),
    )
    assert response.status_code == 200
    assert "catastrophic backtracking" in " ".join(
        response.context["adminform"].form.errors["regex"]
    )
    pattern.refresh_from_db()
    assert pattern.regex == shipped


@pytest.mark.django_db
def test_an_officer_adds_a_pattern_and_the_addition_is_audited(client, officer):
    client.force_login(officer)
    response = client.post(reverse("admin:compliance_piipattern_add"), pattern_form())
    assert response.status_code == 302
    pattern = PiiPattern.objects.get(name="Employee id")
    entry = audit_of(pattern).get()
    assert entry.action == "create"
    assert entry.actor == "officer"
    assert entry.after["regex"] == r"\bEMP-\d{6}\b"
    assert entry.after["context_words"] == ["employee"]


@pytest.mark.django_db
def test_an_officer_changes_a_pattern_with_before_and_after(client, officer):
    pattern = PiiPattern.objects.get(name="US Social Security number")
    shipped = pattern.regex
    client.force_login(officer)
    response = client.post(
        reverse("admin:compliance_piipattern_change", args=[pattern.pk]),
        pattern_form(
            name=pattern.name,
            pii_type="us_ssn",
            regex=shipped,
            validator="us_ssn",
            context_words="ssn,social security",
            confidence="0.95",
            default_classification=str(pattern.default_classification_id),
        ),
    )
    assert response.status_code == 302
    entry = audit_of(pattern).get()
    assert entry.action == "update"
    assert entry.before["confidence"] == "0.85"
    assert entry.after["confidence"] == "0.95"
    assert entry.before["context_words"] == ["ssn", "social security", "social"]
    assert entry.after["context_words"] == ["ssn", "social security"]


@pytest.mark.django_db
def test_a_steward_cannot_change_pii_patterns(client, steward):
    pattern = PiiPattern.objects.get(name="IPv4 address")
    client.force_login(steward)
    change_url = reverse("admin:compliance_piipattern_change", args=[pattern.pk])
    assert client.get(change_url).status_code == 200  # may look
    response = client.post(change_url, pattern_form(name=pattern.name, regex=r"\d+"))
    assert response.status_code == 403
    assert client.post(reverse("admin:compliance_piipattern_add"), pattern_form()).status_code == (
        403
    )
    pattern.refresh_from_db()
    assert pattern.regex != r"\d+"


# --- Trying a pattern before saving it --------------------------------------------------


def test_try_pattern_reports_where_a_regex_matches():
    matches = try_pattern(regex=r"\d{3}", sample_text="ab 123 cd 4567 é 890")
    assert matches == [
        {"start": 3, "end": 6, "text": "123", "valid": None},
        {"start": 10, "end": 13, "text": "456", "valid": None},
        {"start": 17, "end": 20, "text": "890", "valid": None},
    ]


def test_try_pattern_hands_each_candidate_and_its_surroundings_to_the_validator():
    seen = []

    def only_even(candidate: str, before: str, after: str) -> bool:
        seen.append((candidate, before, after))
        return int(candidate) % 2 == 0

    matches = try_pattern(regex=r"\d+", sample_text="a 12 b 7", validator=only_even)
    assert [m["valid"] for m in matches] == [True, False]
    assert seen == [("12", "a ", " b 7"), ("7", "a 12 b ", "")]


def test_try_pattern_refuses_what_a_saved_pattern_may_not_be():
    with pytest.raises(ValidationError, match="matches the empty string"):
        try_pattern(regex="x*", sample_text="abc")
    with pytest.raises(ValidationError, match="longer than"):
        try_pattern(regex="x", sample_text="x" * (TRY_SAMPLE_MAX_CHARS + 1))


def test_try_pattern_stops_at_its_match_limit():
    assert len(try_pattern(regex="x", sample_text="x" * 500, max_matches=10)) == 10


@pytest.mark.django_db
def test_the_try_endpoint_returns_matches(client, officer):
    client.force_login(officer)
    response = client.post(
        reverse(TRY_URL),
        {"regex": r"EMP-\d{6}", "validator": "none", "sample_text": "by EMP-123456 and EMP-000001"},
    )
    assert response.status_code == 200
    assert response.json() == {
        "matches": [
            {"start": 3, "end": 13, "text": "EMP-123456", "valid": None},
            {"start": 18, "end": 28, "text": "EMP-000001", "valid": None},
        ],
        "validator": "none",
        "validator_applied": False,
    }


@pytest.mark.django_db
def test_the_try_endpoint_applies_the_patterns_validator(client, officer):
    pytest.importorskip("governance.compliance.pii.validators")
    client.force_login(officer)
    response = client.post(
        reverse(TRY_URL),
        {
            "regex": r"\b(?:\d[ -]?){12,18}\d\b",
            "validator": "luhn",
            "sample_text": "card 4111 1111 1111 1111, not 4111 1111 1111 1112",
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert body["validator_applied"] is True
    assert [(m["text"], m["valid"]) for m in body["matches"]] == [
        ("4111 1111 1111 1111", True),
        ("4111 1111 1111 1112", False),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("regex", "reason"),
    [
        ("(", "does not compile"),
        ("a*", "empty string"),
        ("(a+)+b", "catastrophic"),
        (r"[\s\S]{1,1000}" * 8 + "Z", "counted repeats allow 8,000 repetitions"),
        (r"([\s\S]{1,30}){1,30}Z", "RE2 program of 7,264 instructions"),
    ],
)
def test_the_try_endpoint_says_why_a_regex_is_refused(client, officer, regex, reason):
    client.force_login(officer)
    response = client.post(reverse(TRY_URL), {"regex": regex, "sample_text": "aaa"})
    assert response.status_code == 400
    assert reason in response.json()["error"]


@pytest.mark.django_db
def test_only_those_who_may_write_patterns_may_try_them(client, steward, viewer, officer):
    data = {"regex": r"\d+", "sample_text": "123"}
    for user in (steward, viewer):
        client.force_login(user)
        assert client.post(reverse(TRY_URL), data).status_code == 403
    client.logout()
    response = client.post(reverse(TRY_URL), data)
    assert response.status_code == 302
    assert "/login/" in response["Location"]
    client.force_login(officer)
    assert client.get(reverse(TRY_URL)).status_code == 405


@pytest.mark.django_db
def test_the_try_box_is_on_the_form_of_whoever_may_use_it(client, officer, steward):
    pattern = PiiPattern.objects.first()
    client.force_login(officer)
    for url in (
        reverse("admin:compliance_piipattern_add"),
        reverse("admin:compliance_piipattern_change", args=[pattern.pk]),
    ):
        page = client.get(url).content.decode()
        assert 'id="try-pattern-sample"' in page
        assert 'id="try-pattern-button"' in page
        assert f'data-try-url="{reverse(TRY_URL)}"' in page
        assert "compliance/js/try_pattern.js" in page
        assert "<script>" not in page  # no inline script (CSP)

    client.force_login(steward)
    page = client.get(reverse("admin:compliance_piipattern_change", args=[pattern.pk]))
    assert b"try-pattern-button" not in page.content


# --- Classification levels ---------------------------------------------------------


def level_form(**overrides) -> dict:
    data = {"name": "secret", "rank": "50", "description": "", "masking": "redact"}
    data.update(overrides)
    return data


@pytest.mark.django_db
def test_a_rank_already_taken_is_refused_naming_its_level(client, officer):
    client.force_login(officer)
    response = client.post(reverse("admin:compliance_classificationlevel_add"), level_form(rank=30))
    assert response.status_code == 200
    errors = " ".join(response.context["adminform"].form.errors["rank"])
    assert "Rank 30 already belongs to the level “confidential”" in errors
    assert not ClassificationLevel.objects.filter(name="secret").exists()


@pytest.mark.django_db
def test_an_officer_adds_a_level_with_a_free_rank(client, officer):
    client.force_login(officer)
    response = client.post(reverse("admin:compliance_classificationlevel_add"), level_form())
    assert response.status_code == 302
    level = ClassificationLevel.objects.get(name="secret")
    assert audit_of(level).get().after["rank"] == 50


@pytest.mark.django_db
def test_a_level_in_use_cannot_be_deleted(client, officer, dataset):
    level = ClassificationLevel.objects.get(name="internal")  # default of the IP patterns
    DatasetField.objects.create(dataset=dataset, name="ip", classification=level)
    client.force_login(officer)
    url = reverse("admin:compliance_classificationlevel_delete", args=[level.pk])

    page = client.get(url)
    assert page.status_code == 200
    text = page.content.decode()
    assert "would require deleting the following protected related objects" in text
    assert "orders.ip" in text
    assert "IPv4 address" in text

    response = client.post(url, {"post": "yes"})
    assert response.status_code == 200  # the same refusal, nothing deleted
    assert ClassificationLevel.objects.filter(pk=level.pk).exists()
    assert not audit_of(level).exists()


@pytest.mark.django_db
def test_the_delete_action_refuses_levels_in_use_too(client, officer):
    level = ClassificationLevel.objects.get(name="restricted")  # default of SSN, card, IBAN
    client.force_login(officer)
    response = client.post(
        reverse("admin:compliance_classificationlevel_changelist"),
        {"action": "delete_selected", "_selected_action": [level.pk], "post": "yes"},
    )
    assert response.status_code == 200
    assert "protected related objects" in response.content.decode()
    assert ClassificationLevel.objects.filter(pk=level.pk).exists()


@pytest.mark.django_db
def test_a_level_no_longer_used_is_deleted_and_audited(client, officer):
    level = ClassificationLevel.objects.create(name="obsolete", rank=99)
    level_id = level.pk
    client.force_login(officer)
    response = client.post(
        reverse("admin:compliance_classificationlevel_delete", args=[level_id]), {"post": "yes"}
    )
    assert response.status_code == 302
    assert not ClassificationLevel.objects.filter(pk=level_id).exists()
    entry = AuditLog.objects.get(object_type="compliance.classificationlevel", object_id=level_id)
    assert entry.action == "delete"
    assert entry.before["name"] == "obsolete"


@pytest.mark.django_db
def test_a_steward_cannot_change_classification_levels(client, steward):
    level = ClassificationLevel.objects.get(name="public")
    client.force_login(steward)
    response = client.post(
        reverse("admin:compliance_classificationlevel_change", args=[level.pk]),
        level_form(name="public", rank=10, masking="full"),
    )
    assert response.status_code == 403


# --- The audit log ----------------------------------------------------------------------


@pytest.fixture
def entries(db):
    return [
        record_audit(actor="alice", action="update", object_type="pipeline.dataset", object_id="7"),
        record_audit(actor="bob", action="delete", object_type="quality.qualityrule"),
    ]


@pytest.mark.django_db
def test_the_audit_log_is_read_only_in_the_admin(client, superuser, entries):
    entry = entries[0]
    client.force_login(superuser)
    model_admin = admin.site._registry[AuditLog]
    changelist = client.get(reverse("admin:compliance_auditlog_changelist"))
    assert changelist.status_code == 200
    request = changelist.wsgi_request
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request, entry)
    assert not model_admin.has_delete_permission(request, entry)
    assert "delete_selected" not in model_admin.get_actions(request)
    # Exporting is the one action: it reads, it changes nothing.
    assert set(model_admin.get_actions(request)) <= {"export_selected_as_csv"}

    assert client.get(reverse("admin:compliance_auditlog_add")).status_code == 403
    change_url = reverse("admin:compliance_auditlog_change", args=[entry.pk])
    view = client.get(change_url)
    assert view.status_code == 200
    assert b"Save" not in view.content
    assert client.post(change_url, {"actor": "mallory"}).status_code == 403
    delete_url = reverse("admin:compliance_auditlog_delete", args=[entry.pk])
    assert client.post(delete_url, {"post": "yes"}).status_code == 403
    entry.refresh_from_db()
    assert entry.actor == "alice"


@pytest.mark.django_db
def test_the_audit_log_filters_by_action_object_type_and_exact_search(client, steward, entries):
    client.force_login(steward)
    url = reverse("admin:compliance_auditlog_changelist")

    def shown(params) -> set[str]:
        response = client.get(url, params)
        assert response.status_code == 200
        return {entry.actor for entry in response.context["cl"].result_list}

    assert shown({"action": "delete"}) == {"bob"}
    assert shown({"object_type": "pipeline.dataset"}) == {"alice"}
    assert shown({"q": "alice"}) == {"alice"}
    assert shown({"q": "7"}) == {"alice"}
    assert shown({"q": "ali"}) == set()  # exact, not a substring scan


@pytest.mark.django_db
def test_a_viewer_cannot_read_the_audit_log(client, viewer, entries):
    client.force_login(viewer)
    assert client.get(reverse("admin:compliance_auditlog_changelist")).status_code == 403
    url = reverse("admin:compliance_auditlog_change", args=[entries[0].pk])
    assert client.get(url).status_code == 403


@pytest.mark.django_db
def test_a_typed_range_on_the_audit_log_reads_only_its_quarter(client, steward, entries):
    from atlas_site.partitions import AUDIT_LOG, existing_partitions

    client.force_login(steward)
    today = timezone.localdate()
    start = AUDIT_LOG.period_start(today)
    response = client.get(
        reverse("admin:compliance_auditlog_changelist"),
        {"at__gte": str(start), "at__lt": str(AUDIT_LOG.shift(start, 1))},
    )
    assert response.status_code == 200
    assert set(entries) <= set(response.context["cl"].result_list)
    plan = response.context["cl"].queryset.explain()
    assert {name for name in existing_partitions(AUDIT_LOG) if name in plan} == {
        AUDIT_LOG.partition_name(start)
    }


@pytest.mark.django_db
def test_an_officer_grants_and_withdraws_a_levels_clearance_audited(
    client, officer, viewer, django_user_model
):
    from django.contrib.auth.models import Group

    from governance.compliance.clearance import Clearance, cleared_groups
    from governance.compliance.models import AuditLog
    from governance.compliance.roles import DATA_STEWARD, VIEWER

    confidential = ClassificationLevel.objects.get(name="confidential")
    assert Clearance.for_user(viewer).sees(confidential.pk) is False
    url = reverse("admin:compliance_classificationlevel_change", args=[confidential.pk])
    client.force_login(officer)
    form = level_form(name="confidential", rank="30", masking="full")
    viewers = Group.objects.get(name=VIEWER)
    response = client.post(url, {**form, "cleared_groups": [viewers.pk]})
    assert response.status_code == 302
    assert cleared_groups(confidential) == [viewers]
    fresh = django_user_model.objects.get(pk=viewer.pk)
    assert Clearance.for_user(fresh).sees(confidential.pk)
    granted = AuditLog.objects.get(object_type="auth.group", object_id=str(viewers.pk))
    assert (
        granted.detail
        == "clearance granted: members of Viewer may now see values classified confidential"
    )

    # Withdrawn by leaving the box empty; the stewards' default clearance stays elsewhere.
    assert client.post(url, form).status_code == 302
    assert cleared_groups(confidential) == []
    assert AuditLog.objects.filter(detail__startswith="clearance withdrawn").count() == 1
    internal = ClassificationLevel.objects.get(name="internal")
    assert Group.objects.get(name=DATA_STEWARD) in cleared_groups(internal)


@pytest.mark.django_db
def test_the_audit_log_reads_like_an_activity_feed(client, steward, officer, customers):
    from governance.compliance.models import ClassificationLevel
    from governance.pipeline.classification import change_field_classification

    email = customers.fields.get(name="email")  # confidential
    change_field_classification(
        field=email,
        level=ClassificationLevel.objects.get(name="public"),
        actor=officer,
        reason="only role addresses are kept now",
    )
    client.force_login(steward)
    url = reverse("admin:compliance_auditlog_changelist")
    html = client.get(url).content.decode()
    # Levels by name, not by id; the object linked where the admin has a page for it.
    assert "classification: confidential → public" in html
    record_audit(actor="alice", action="update", instance=customers, detail="renamed")
    linked = client.get(url, {"q": str(customers.pk)}).content.decode()
    assert f'href="/admin/pipeline/dataset/{customers.pk}/change/"' in linked
    # Words of the detail or the object's name find the entry (recent entries).
    found = client.get(url, {"q": "role addresses"}).context["cl"].result_list
    assert [entry.action for entry in found] and all(
        "role addresses" in entry.detail for entry in found
    )
    entry = next(iter(found))
    page = client.get(reverse("admin:compliance_auditlog_change", args=[entry.pk])).content
    assert b'class="atlas-diff"' in page
    assert b'<th scope="row">classification</th><td>confidential</td><td>public</td>' in page
