"""The steward admin: every page loads, roles see what they may, writes are audited,
and pages over huge tables stay cheap."""

import uuid
from datetime import date
from decimal import Decimal

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from atlas_site.admin_base import (
    About,
    AtLeast,
    EstimatedCountPaginator,
    LargeTableAdmin,
    estimated_row_count,
)
from chart.models import ChartRecord, PiiFinding, QuarantinedRecord
from explore.models import LandingBatch, RawRecord
from governance.archive.models import ArchivedPartition, RetentionPolicy
from governance.compliance.models import (
    AuditLog,
    ClassificationLevel,
    ClassificationSuggestion,
    PiiPattern,
)
from governance.compliance.services import record_audit
from governance.pipeline.models import (
    Alert,
    AlertChannel,
    AlertRule,
    AlertSubscription,
    ApiToken,
    DatasetField,
    DeadLetter,
    Heartbeat,
    LineageEdge,
    Notification,
    Run,
    RunChunk,
    RunStep,
    Watermark,
)
from governance.quality.models import CheckResult, QualityDimension, QualityRule, QualityScore
from navigate.models import Fact, MetricDefinition

LARGE_TABLE_MODELS = (
    RawRecord,
    ChartRecord,
    QuarantinedRecord,
    PiiFinding,
    Fact,
    AuditLog,
    Run,
)


def admin_url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def audit_entries(obj_or_model, object_id=None):
    model = obj_or_model if isinstance(obj_or_model, type) else type(obj_or_model)
    object_id = object_id if object_id is not None else obj_or_model.pk
    return AuditLog.objects.filter(
        object_type=model._meta.label_lower, object_id=str(object_id)
    ).order_by("id")


@pytest.fixture
def one_of_each(db, superuser, dataset):
    """A row of every model the admin shows (reference data brings levels, patterns
    and dimensions; the role fixtures bring users and groups)."""
    now = timezone.now()
    field = DatasetField.objects.create(dataset=dataset, name="email", data_type="email")
    run = Run.objects.create(dataset=dataset, kind="promote_chart", triggered_by="test")
    RunStep.objects.create(run=run, name="validate")
    DeadLetter.objects.create(
        task_id=str(uuid.uuid4()),
        task_name="chart.tasks.promote_to_chart",
        args=[run.pk],
        deliveries=3,
        first_seen_at=now,
        last_seen_at=now,
        run=run,
    )
    Watermark.objects.create(dataset=dataset, layer="chart", position=1)
    LineageEdge.objects.create(
        dataset=dataset, source_layer="explore", target_layer="chart", transform="typed"
    )
    batch = LandingBatch.objects.create(
        key=uuid.uuid4(),
        dataset=dataset,
        file="landing/orders/f.csv",
        sha256="0" * 64,
        format="csv",
        received_at=now,
    )
    raw = RawRecord.objects.create(
        received_at=now,
        batch=batch,
        dataset=dataset,
        line_number=1,
        payload={"email": "a@example.com"},
        raw_text='{"email": "a@example.com"}',
    )
    chart_record = ChartRecord.objects.create(
        dataset=dataset, raw_record=raw, data={"email": "***"}, run=run
    )
    QuarantinedRecord.objects.create(
        dataset=dataset, raw_record=raw, reasons=[{"field": "email"}], run=run
    )
    PiiFinding.objects.create(
        dataset=dataset,
        raw_record=raw,
        chart_record=chart_record,
        field_name="email",
        pii_type="email",
        confidence=Decimal("0.9"),
        masked_excerpt="a***@example.com",
        run=run,
    )
    metric = MetricDefinition.objects.create(
        slug="orders-per-day",
        name="Orders per day",
        dataset=dataset,
        aggregation="count",
        time_field="ordered_at",
    )
    Fact.objects.create(
        period_start=date.today(), metric=metric, grain="day", dimension_key="-", value=1
    )
    rule = QualityRule.objects.create(
        dataset=dataset,
        field_name="email",
        dimension=QualityDimension.objects.get(code="completeness"),
        kind="not_null",
    )
    CheckResult.objects.create(run=run, rule=rule, passed_count=1)
    QualityScore.objects.create(run=run, dataset=dataset, overall=Decimal("1"))
    ClassificationSuggestion.objects.create(
        dataset_field=field,
        suggested_level=ClassificationLevel.objects.get(name="confidential"),
        pii_types=["email"],
        evidence_key="email:high",
    )
    policy = RetentionPolicy.objects.create(layer="explore", keep_months=12)
    Run.objects.create(kind="archive", triggered_by="schedule")  # shown as a retention run
    ArchivedPartition.objects.create(
        table_name="explore.raw_record",
        partition_name="raw_record_2020_01",
        range_start=now,
        range_end=now,
        row_count=0,
        byte_size=0,
        sha256="0" * 64,
        object_key="archive/x",
        policy=policy,
        archived_by="test",
    )
    ApiToken.objects.create(
        user=superuser, name="nightly export", token_hash="1" * 64, prefix="atl_1"
    )
    channel = AlertChannel.objects.create(name="ops", kind="email", recipients=["o@example.com"])
    rule = AlertRule.objects.create(name="failed runs", kind="run_failed")
    rule.channels.set([channel])
    alert = Alert.objects.create(
        rule=rule, opened_at=now, last_notified_at=now, summary="1 dead letter(s) set aside"
    )
    Notification.objects.create(
        alert=alert,
        channel=channel,
        kind="opened",
        subject="s",
        body="b",
        target="o@example.com",
        created_at=now,
    )
    AlertSubscription.objects.create(user=superuser, kinds=["stale"])
    Heartbeat.objects.create(component="worker", node="celery@a", seen_at=now)
    RunChunk.objects.create(run=run, seq=0, after_id=0, last_id=10, lease_until=now)
    record_audit(actor="test", action="action", object_type="test", detail="one entry")


@pytest.mark.django_db
def test_every_model_of_the_seven_apps_is_registered():
    from django.apps import apps

    atlas_apps = ("pipeline", "explore", "chart", "navigate", "quality", "compliance", "archive")
    for label in atlas_apps:
        for model in apps.get_app_config(label).get_models():
            assert admin.site.is_registered(model), model


@pytest.mark.django_db
def test_every_admin_page_loads_for_a_superuser(client, superuser, one_of_each):
    client.force_login(superuser)
    checked = 0
    for model, model_admin in admin.site._registry.items():
        response = client.get(admin_url(model, "changelist"))
        assert response.status_code == 200, model

        request = response.wsgi_request
        if model_admin.has_add_permission(request):
            assert client.get(admin_url(model, "add")).status_code == 200, model

        obj = model._default_manager.order_by("pk").first()
        assert obj is not None, f"no {model.__name__} to open"
        response = client.get(admin_url(model, "change", obj.pk))
        assert response.status_code == 200, model
        checked += 1
    assert checked >= 24


@pytest.mark.django_db
def test_the_index_is_headed_atlas_and_ordered_for_stewards(client, superuser):
    client.force_login(superuser)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 200
    assert b"Atlas" in response.content
    labels = [app["app_label"] for app in response.context["app_list"]]
    assert labels == [
        "pipeline",
        "explore",
        "chart",
        "navigate",
        "quality",
        "compliance",
        "archive",
        "auth",
    ]
    pipeline_models = [m["object_name"] for m in response.context["app_list"][0]["models"]]
    assert pipeline_models[:2] == ["Dataset", "DatasetField"]


# --- Roles -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_viewer_views_but_cannot_add_or_change(client, viewer, dataset):
    client.force_login(viewer)
    assert client.get(admin_url(type(dataset), "changelist")).status_code == 200
    assert client.get(admin_url(type(dataset), "change", dataset.pk)).status_code == 200
    assert client.get(admin_url(type(dataset), "add")).status_code == 403
    response = client.post(admin_url(type(dataset), "add"), {"slug": "x", "name": "X"})
    assert response.status_code == 403
    response = client.post(
        admin_url(type(dataset), "change", dataset.pk), {"slug": "renamed", "name": "R"}
    )
    assert response.status_code == 403
    response = client.post(admin_url(type(dataset), "delete", dataset.pk), {"post": "yes"})
    assert response.status_code == 403
    dataset.refresh_from_db()
    assert dataset.slug == "orders"
    assert not audit_entries(dataset).exists()


@pytest.mark.django_db
def test_a_viewer_sees_no_audit_log_and_cannot_change_a_pattern(client, viewer):
    client.force_login(viewer)
    assert client.get(admin_url(AuditLog, "changelist")).status_code == 403
    pattern = PiiPattern.objects.first()
    response = client.post(admin_url(PiiPattern, "change", pattern.pk), {"name": "x"})
    assert response.status_code == 403


@pytest.mark.django_db
def test_the_index_shows_each_role_what_it_may_change(client, steward, officer, viewer):
    def changeable(user) -> set[str]:
        client.force_login(user)
        response = client.get(reverse("admin:index"))
        return {
            model["object_name"]
            for app in response.context["app_list"]
            for model in app["models"]
            if not model.get("view_only")
        }

    # A viewer keeps only their own alert subscriptions.
    assert changeable(viewer) == {"AlertSubscription"}
    steward_models = changeable(steward)
    assert {"Dataset", "DatasetField", "QualityRule", "MetricDefinition"} <= steward_models
    assert {"QualityDimension"} <= steward_models
    assert not {"PiiPattern", "ClassificationLevel"} & steward_models
    officer_models = changeable(officer)
    assert {"PiiPattern", "ClassificationLevel", "RetentionPolicy"} <= officer_models
    assert not {"Dataset", "QualityDimension", "QualityRule"} & officer_models


# --- Auditing of admin writes -------------------------------------------------------------


def dataset_form(**overrides) -> dict:
    data = {
        "slug": "customers",
        "name": "Customers",
        "description": "",
        "owner": "",
        "is_active": "on",
        "business_key": "customer_id",
        "event_time_field": "",
        "quality_threshold": "0.95",
        "gate_action": "quarantine",
        "schedule": "",
        "auto_promote": "on",
        "freshness_target": "1 00:00:00",
        "fields-TOTAL_FORMS": "0",
        "fields-INITIAL_FORMS": "0",
        "fields-MIN_NUM_FORMS": "0",
        "fields-MAX_NUM_FORMS": "1000",
    }
    data.update(overrides)
    return data


@pytest.mark.django_db
def test_adding_a_dataset_with_its_contract_is_audited(client, steward):
    from governance.pipeline.models import Dataset

    client.force_login(steward)
    data = dataset_form(
        **{
            "fields-TOTAL_FORMS": "1",
            "fields-0-position": "1",
            "fields-0-name": "customer_id",
            "fields-0-data_type": "integer",
            "fields-0-required": "on",
            "fields-0-allowed_values": "",
            "fields-0-pattern": "",
        }
    )
    response = client.post(admin_url(Dataset, "add"), data)
    assert response.status_code == 302, response.context and response.context["errors"]

    created = Dataset.objects.get(slug="customers")
    entry = audit_entries(created).get()
    assert entry.action == "create"
    assert entry.actor == "steward"
    assert entry.actor_id == steward.pk
    assert entry.before is None
    assert entry.after["slug"] == "customers"
    assert entry.after["business_key"] == ["customer_id"]

    field = created.fields.get()
    field_entry = audit_entries(field).get()
    assert field_entry.action == "create"
    assert field_entry.after["name"] == "customer_id"
    assert field_entry.after["dataset_id"] == created.pk


@pytest.mark.django_db
def test_changing_a_dataset_records_before_and_after(client, steward, dataset):
    client.force_login(steward)
    response = client.post(
        admin_url(type(dataset), "change", dataset.pk),
        dataset_form(slug="orders", name="Orders (EU)", business_key="order_id"),
    )
    assert response.status_code == 302

    entry = audit_entries(dataset).get()
    assert entry.action == "update"
    assert entry.before["name"] == "Orders"
    assert entry.after["name"] == "Orders (EU)"
    # Only what changed is kept (and updated_at, which every save moves).
    assert "slug" not in entry.after
    assert set(entry.after) == {"name", "updated_at"}


@pytest.mark.django_db
def test_the_before_values_come_from_the_database_row(rf, steward, dataset):
    """save_model receives the instance already changed by the form; "before" is the stored row."""
    from governance.pipeline.admin.datasets import DatasetAdmin

    model_admin = DatasetAdmin(type(dataset), admin.site)
    request = rf.post("/")
    request.user = steward
    data = dataset_form(slug="orders", name="Changed by the form", business_key="order_id")
    form = model_admin.get_form(request, dataset, change=True)(data, instance=dataset)
    assert form.is_valid(), form.errors
    changed = model_admin.save_form(request, form, change=True)
    assert changed.name == "Changed by the form"  # in memory, before any save
    model_admin.save_model(request, changed, form, change=True)
    model_admin.save_related(request, form, [], change=True)

    entry = audit_entries(dataset).get()
    assert entry.before == {"name": "Orders", "updated_at": entry.before["updated_at"]}
    assert entry.after["name"] == "Changed by the form"


@pytest.mark.django_db
def test_editing_and_deleting_contract_fields_inline_is_audited(client, steward, dataset):
    field = DatasetField.objects.create(dataset=dataset, name="order_id", data_type="integer")
    doomed = DatasetField.objects.create(dataset=dataset, name="legacy", position=2)
    client.force_login(steward)
    data = dataset_form(
        slug="orders",
        name="Orders",
        business_key="order_id",
        **{
            "fields-TOTAL_FORMS": "2",
            "fields-INITIAL_FORMS": "2",
            "fields-0-id": str(field.pk),
            "fields-0-dataset": str(dataset.pk),
            "fields-0-position": "0",
            "fields-0-name": "order_id",
            "fields-0-data_type": "integer",
            "fields-0-required": "on",
            "fields-0-allowed_values": "",
            "fields-0-pattern": "",
            "fields-1-id": str(doomed.pk),
            "fields-1-dataset": str(dataset.pk),
            "fields-1-position": "2",
            "fields-1-name": "legacy",
            "fields-1-data_type": "string",
            "fields-1-allowed_values": "",
            "fields-1-pattern": "",
            "fields-1-DELETE": "on",
        },
    )
    response = client.post(admin_url(type(dataset), "change", dataset.pk), data)
    assert response.status_code == 302, response.context and response.context["errors"]

    change = audit_entries(field).get()
    assert change.action == "update"
    assert change.before == {"required": False}
    assert change.after == {"required": True}
    deletion = audit_entries(DatasetField, doomed.pk).get()
    assert deletion.action == "delete"
    assert deletion.before["name"] == "legacy"
    assert deletion.after is None
    assert not DatasetField.objects.filter(pk=doomed.pk).exists()


@pytest.mark.django_db
def test_deleting_from_the_admin_is_audited_with_what_cascaded(client, steward, dataset):
    DatasetField.objects.create(dataset=dataset, name="order_id")
    dataset_id = dataset.pk
    client.force_login(steward)
    response = client.post(admin_url(type(dataset), "delete", dataset_id), {"post": "yes"})
    assert response.status_code == 302

    entry = audit_entries(type(dataset), dataset_id).get()
    assert entry.action == "delete"
    assert entry.object_repr == "orders"
    assert entry.before["slug"] == "orders"
    assert "pipeline.DatasetField: 1" in entry.detail


@pytest.mark.django_db
def test_the_delete_action_audits_every_object(client, steward):
    from governance.pipeline.models import Dataset

    first = Dataset.objects.create(slug="a", name="A")
    second = Dataset.objects.create(slug="b", name="B")
    client.force_login(steward)
    response = client.post(
        admin_url(Dataset, "changelist"),
        {"action": "delete_selected", "_selected_action": [first.pk, second.pk], "post": "yes"},
    )
    assert response.status_code == 302
    assert not Dataset.objects.filter(slug__in=["a", "b"]).exists()
    for dataset_id, slug in ((first.pk, "a"), (second.pk, "b")):
        entry = audit_entries(Dataset, dataset_id).get()
        assert entry.action == "delete"
        assert entry.before["slug"] == slug


@pytest.mark.django_db
def test_list_editable_saves_are_audited(client, officer):
    pattern = PiiPattern.objects.get(name="IPv4 address")
    patterns = list(PiiPattern.objects.order_by("pii_type", "name", "-pk"))
    data = {
        "form-TOTAL_FORMS": str(len(patterns)),
        "form-INITIAL_FORMS": str(len(patterns)),
        "_save": "Save",
    }
    for index, each in enumerate(patterns):
        data[f"form-{index}-id"] = str(each.pk)
        if each.enabled and each.pk != pattern.pk:
            data[f"form-{index}-enabled"] = "on"
    client.force_login(officer)
    response = client.post(admin_url(PiiPattern, "changelist"), data)
    assert response.status_code == 302

    pattern.refresh_from_db()
    assert pattern.enabled is False
    entry = audit_entries(pattern).get()
    assert entry.before["enabled"] is True
    assert entry.after["enabled"] is False
    assert AuditLog.objects.filter(object_type="compliance.piipattern").count() == 1


@pytest.mark.django_db
def test_user_and_group_changes_are_audited_without_the_password(client, superuser, viewer):
    client.force_login(superuser)
    stewards = Group.objects.get(name="Data Steward")
    response = client.post(
        reverse("admin:auth_user_change", args=[viewer.pk]),
        {
            "username": "viewer",
            "first_name": "",
            "last_name": "",
            "email": "",
            "is_active": "on",
            "is_staff": "on",
            "groups": [stewards.pk],
            "last_login_0": "",
            "last_login_1": "",
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
        },
    )
    assert response.status_code == 302, response.context and response.context["errors"]
    entry = audit_entries(viewer).get()
    assert entry.after["groups"] == [stewards.pk]
    assert entry.before["groups"] == [Group.objects.get(name="Viewer").pk]

    response = client.post(
        reverse("admin:auth_user_password_change", args=[viewer.pk]),
        {"password1": "a-new-long-passphrase-9", "password2": "a-new-long-passphrase-9"},
    )
    assert response.status_code == 302
    entry = audit_entries(viewer).last()
    assert entry.action == "update"
    assert entry.before["password"].startswith("hidden:")
    assert entry.after["password"].startswith("hidden:")
    assert entry.before["password"] != entry.after["password"]
    assert "md5" not in str(entry.after)


# --- Large tables -----------------------------------------------------------------------


@pytest.mark.parametrize("model", LARGE_TABLE_MODELS, ids=lambda m: m.__name__)
def test_large_tables_use_the_cheap_admin(model):
    model_admin = admin.site._registry[model]
    assert isinstance(model_admin, LargeTableAdmin)
    assert model_admin.show_full_result_count is False
    assert model_admin.paginator is EstimatedCountPaginator
    foreign_keys = {f.name for f in model._meta.fields if f.many_to_one}
    assert foreign_keys <= set(model_admin.raw_id_fields)
    shown = set(model_admin.list_display)
    blobs = {f.name for f in model._meta.fields if f.get_internal_type() == "JSONField"}
    assert not shown & blobs


@pytest.mark.django_db
def test_a_large_changelist_never_counts_the_whole_table(client, superuser, one_of_each):
    client.force_login(superuser)
    for model in LARGE_TABLE_MODELS:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(admin_url(model, "changelist"))
        assert response.status_code == 200
        table = model._meta.db_table.split('"."')[-1]
        for query in queries:
            sql = query["sql"]
            if "COUNT(" in sql and f'"{table}"' in sql:
                assert "LIMIT" in sql, sql


@pytest.mark.django_db
def test_the_raw_record_list_leaves_payload_and_raw_text_unread(client, superuser, one_of_each):
    client.force_login(superuser)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(admin_url(RawRecord, "changelist"))
    assert response.status_code == 200
    listing = [q["sql"] for q in queries if 'FROM "explore"."raw_record"' in q["sql"]]
    assert listing
    assert all('"payload"' not in sql and '"raw_text"' not in sql for sql in listing)


@pytest.mark.django_db
def test_the_paginator_estimates_unfiltered_and_caps_filtered_counts(one_of_each):
    for _ in range(4):
        record_audit(actor="test", action="action", object_type="test")
    with connection.cursor() as cursor:
        cursor.execute('ANALYZE "compliance"."audit_log"')
    assert estimated_row_count(AuditLog) == AuditLog.objects.count()

    class SmallCap(EstimatedCountPaginator):
        count_cap = 2

    unfiltered = SmallCap(AuditLog.objects.order_by("-id"), 10).count
    assert isinstance(unfiltered, About)
    assert unfiltered == AuditLog.objects.count()
    assert str(unfiltered) == f"~{unfiltered:d}"

    filtered = SmallCap(AuditLog.objects.filter(actor="test").order_by("-id"), 10).count
    assert isinstance(filtered, AtLeast)
    assert filtered == 2
    assert str(filtered) == "2+"

    few = SmallCap(AuditLog.objects.filter(detail="one entry").order_by("-id"), 10).count
    assert few == 1


@pytest.mark.django_db
def test_an_unanalysed_table_is_counted_not_estimated(one_of_each):
    # A table never analysed has no estimate: the paginator counts (up to its cap).
    assert EstimatedCountPaginator(RawRecord.objects.order_by("-id"), 10).count == 1


@pytest.mark.django_db
def test_the_quarter_filter_reads_only_that_quarters_partition(client, superuser, one_of_each):
    client.force_login(superuser)
    response = client.get(admin_url(AuditLog, "changelist"))
    date_filter = response.context["cl"].filter_specs[0]
    this_quarter = dict(date_filter.links)["This quarter"]
    params = {key: str(value) for key, value in this_quarter.items()}

    # The seeded entry and the login audit of force_login above, both this quarter.
    expected = AuditLog.objects.filter(at__gte=params["at__gte"], at__lt=params["at__lt"]).count()
    response = client.get(admin_url(AuditLog, "changelist"), params)
    assert response.status_code == 200
    assert response.context["cl"].result_count == expected >= 2
    plan = response.context["cl"].queryset.explain()
    quarter = (timezone.localdate().month - 1) // 3 + 1
    assert f"audit_log_{timezone.localdate():%Y}_q{quarter}" in plan
    assert "audit_log_default" not in plan
