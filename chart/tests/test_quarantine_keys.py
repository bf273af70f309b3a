"""A quarantined record's business key: made as chart makes it, kept on quarantine (by a
promotion, a correction, a re-processing and the migration that fills older records),
shown at the key fields' levels and searched for in the quarantine review."""

import base64
import csv
import io
import re
from importlib import import_module

import pytest
from django.apps import apps as django_apps
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from django.urls import reverse

from chart import reprotect
from chart.business_keys import fill_quarantine_keys
from chart.models import ChartRecord, QuarantinedRecord
from chart.reprocess import correct_quarantined_values, reprocess_quarantined
from chart.services import promote_to_chart
from governance.compliance.clearance import clearance_codename
from governance.compliance.models import ClassificationLevel
from governance.compliance.roles import DATA_STEWARD
from governance.compliance.tokens import TokenKeyring
from governance.pipeline.classification import change_field_classification
from governance.pipeline.models import DatasetField, Run, RunKind, RunStatus

GOOD = {
    "id": "1",
    "email": "ada@example.com",
    "tier": "gold",
    "amount": "10.50",
    "ssn": "123-45-6789",
    "signup": "2026-01-02",
    "notes": "call me",
}
SSN = GOOD["ssn"]
CHANGELIST = "admin:chart_quarantinedrecord_changelist"


def row(**changes):
    return {**GOOD, **changes}


def keyed(dataset, *names):
    dataset.business_key = list(names)
    dataset.save()
    return dataset


def quarantined_by_raw(dataset) -> dict[int, QuarantinedRecord]:
    return {q.raw_record_id: q for q in QuarantinedRecord.objects.filter(dataset=dataset)}


def clear(group_name: str, level_name: str) -> None:
    level = ClassificationLevel.objects.get(name=level_name)
    Group.objects.get(name=group_name).permissions.add(
        Permission.objects.get(codename=clearance_codename(level.pk))
    )


def search(client, term: str, **params):
    response = client.get(reverse(CHANGELIST), {"q": term, **params})
    assert response.status_code == 200
    return response


def found(client, term: str, **params) -> set[int]:
    return {obj.pk for obj in search(client, term, **params).context["cl"].result_list}


# --- Kept on the record -------------------------------------------------------------------


def test_a_quarantined_record_keeps_the_key_chart_gives_the_same_values(customers, land):
    keyed(customers, "id", "ssn")  # a restricted part: held as its keyed token
    raws = land(
        customers,
        [
            row(id="1"),
            row(id="1", tier="bronze"),  # the same key, quarantined for its tier
            row(id="one", tier="bronze"),  # the key's id is no integer: no key
            "{broken",
        ],
    )
    promote_to_chart(dataset=customers, triggered_by="test")
    chart_key = ChartRecord.objects.get(dataset=customers).business_key
    assert chart_key == "1|" + TokenKeyring.from_settings().token(SSN)
    held = quarantined_by_raw(customers)
    assert held[raws[1].pk].business_key == chart_key
    assert held[raws[2].pk].business_key == ""
    assert held[raws[3].pk].business_key == ""


def test_a_correction_of_a_key_field_and_a_reprocessing_make_the_key_again(
    customers, land, steward
):
    raws = land(customers, [row(id="one", tier="bronze")])
    promote_to_chart(dataset=customers, triggered_by="test")
    record = QuarantinedRecord.objects.get(raw_record_id=raws[0].pk)
    assert record.business_key == ""

    record = correct_quarantined_values(record=record, values={"id": "7"}, actor=steward)
    record.refresh_from_db()
    assert record.business_key == "7"
    record = correct_quarantined_values(record=record, values={"notes": "later"}, actor=steward)
    record.refresh_from_db()
    assert record.business_key == "7"  # not a key field: the key stays

    # Re-processed and still quarantined (the tier): the key of what was judged now.
    QuarantinedRecord.objects.filter(pk=record.pk).update(business_key="")
    run = reprocess_quarantined(records=[record], actor=steward)[0]
    assert run.rows_quarantined == 1
    record.refresh_from_db()
    assert (record.business_key, record.reprocess_run_id) == ("7", run.pk)


def test_the_migration_fills_the_keys_of_records_quarantined_before_it(
    customers, land, steward, django_assert_max_num_queries
):
    keyed(customers, "id", "ssn")
    raws = land(
        customers,
        [row(id=str(n), tier="bronze") for n in range(1, 6)] + [row(id="x", tier="bronze")],
    )
    promote_to_chart(dataset=customers, triggered_by="test")
    first = QuarantinedRecord.objects.get(raw_record_id=raws[0].pk)
    # A correction of the restricted key part is stored encrypted: decrypted for the key.
    correct_quarantined_values(record=first, values={"ssn": "987-65-4321"}, actor=steward)
    expected = dict(QuarantinedRecord.objects.values_list("pk", "business_key"))
    token = TokenKeyring.from_settings().token
    assert expected[first.pk] == "1|" + token("987-65-4321")
    assert sorted(expected.values()) == sorted(
        ["", "1|" + token("987-65-4321")] + [f"{n}|{token(SSN)}" for n in range(2, 6)]
    )

    QuarantinedRecord.objects.update(business_key="")  # as the column was added
    migration = import_module("chart.migrations.0008_quarantine_business_key")
    # Chunks of two records: each reads with one query and writes with one UPDATE,
    # whatever the number of records (plus the evaluator's few, once per dataset).
    with django_assert_max_num_queries(2 * 4 + 15):
        assert fill_quarantine_keys(chunk_size=2) == 5
    assert dict(QuarantinedRecord.objects.values_list("pk", "business_key")) == expected

    QuarantinedRecord.objects.update(business_key="")
    migration.fill_keys(django_apps, None)
    assert dict(QuarantinedRecord.objects.values_list("pk", "business_key")) == expected


def test_keys_follow_a_classification_change_and_a_hash_key_rotation(
    customers, land, officer, settings
):
    keyed(customers, "ssn")
    reference = "REF-0001"  # no SSN: a level below restricted keeps it as it is (no PII)
    land(customers, [row(tier="bronze", ssn=reference)])
    promote_to_chart(dataset=customers, triggered_by="test")
    record = QuarantinedRecord.objects.get(dataset=customers)
    assert record.business_key == TokenKeyring.from_settings().token(reference)

    # No longer encrypted: chart's keys hold the value, and so does quarantine's.
    ssn = DatasetField.objects.get(dataset=customers, name="ssn")
    run = change_field_classification(
        field=ssn,
        level=ClassificationLevel.objects.get(name="confidential"),
        actor=officer,
        reason="test data",
    ).reprotect_run
    run = reprotect.reprotect_chart(dataset=customers, run=run)
    assert run.detail["quarantine_keys"] == 1
    record.refresh_from_db()
    assert record.business_key == reference

    # Encrypted again, then a new hash key: `retoken` makes the key under it.
    run = change_field_classification(
        field=ssn, level=ClassificationLevel.objects.get(name="restricted"), actor=officer
    ).reprotect_run
    reprotect.reprotect_chart(dataset=customers, run=run)
    new_key = base64.b64encode(b"R" * 32).decode()
    with override_settings(ATLAS_HASH_KEY=f"new:{new_key},{settings.ATLAS_HASH_KEY}"):
        out = io.StringIO()
        call_command("retoken", stdout=out)
        assert "; 1 quarantined records' business keys." in out.getvalue()
        record.refresh_from_db()
        assert record.business_key == TokenKeyring.from_settings().token(reference)
        assert record.business_key.startswith("tk:new:")


def test_keys_follow_a_new_business_key_definition(customers, land):
    keyed(customers, "email")
    land(customers, [row(id=str(n), email=f"u{n}@example.com", tier="bronze") for n in (1, 2)])
    promote_to_chart(dataset=customers, triggered_by="test")
    assert sorted(QuarantinedRecord.objects.values_list("business_key", flat=True)) == [
        "u1@example.com",
        "u2@example.com",
    ]

    # Made of another field: the old parts are not its values, and would be shown at its
    # level. Emptied in the same save, then made again by the re-protect run it queues.
    keyed(customers, "id")
    assert set(QuarantinedRecord.objects.values_list("business_key", flat=True)) == {""}
    run = Run.objects.get(dataset=customers, kind=RunKind.REPROTECT, status=RunStatus.QUEUED)
    assert "2 quarantined records" in run.detail["reasons"][0]
    reprotect.reprotect_chart(dataset=customers, run=run)
    assert sorted(QuarantinedRecord.objects.values_list("business_key", flat=True)) == ["1", "2"]

    # Saved again with the same key (or any other change): nothing emptied, nothing queued.
    customers.name = "Customers again"
    keyed(customers, "id")
    assert sorted(QuarantinedRecord.objects.values_list("business_key", flat=True)) == ["1", "2"]
    assert not Run.objects.filter(dataset=customers, kind=RunKind.REPROTECT, pk__gt=run.pk)


def test_a_chart_key_made_under_an_earlier_key_definition_is_protected(
    client, steward, customers, land
):
    # Chart keeps the key a record was made with: after the key became the unclassified
    # id, a key made of the confidential e-mail must not be shown at the id's level.
    keyed(customers, "email")
    land(customers, [row(id="1", email="ada@example.com")])
    promote_to_chart(dataset=customers, triggered_by="test")
    keyed(customers, "id")
    land(customers, [row(id="2", email="bob@example.com")])
    promote_to_chart(dataset=customers, triggered_by="test")
    assert sorted(ChartRecord.objects.values_list("business_key", flat=True)) == [
        "2",
        "ada@example.com",
    ]

    client.force_login(steward)  # sees the id, not the e-mail
    changelist = reverse("admin:chart_chartrecord_changelist")
    page = client.get(changelist).content.decode()
    assert "ada@example.com" not in page
    assert 'class="field-business_key">2</td>' in page
    for record in ChartRecord.objects.all():
        detail = client.get(reverse("admin:chart_chartrecord_change", args=[record.pk]))
        assert "ada@example.com" not in detail.content.decode()
    export = client.post(
        changelist,
        {
            "action": "export_selected_as_csv",
            ACTION_CHECKBOX_NAME: list(ChartRecord.objects.values_list("pk", flat=True)),
        },
    )
    assert export.status_code == 200
    exported = b"".join(export.streaming_content).decode()
    assert "ada@example.com" not in exported and "\n" in exported.strip()


@pytest.mark.django_db
def test_the_key_is_indexed_for_equality_and_leading_parts():
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'quarantine_key_idx'")
        (definition,) = cursor.fetchone()
    assert "(dataset_id, business_key varchar_pattern_ops)" in definition


# --- The review: column and search --------------------------------------------------------


def test_the_list_shows_the_key_and_finds_records_by_it(client, steward, customers, land):
    raws = land(customers, [row(id="2", tier="bronze"), row(id="3", tier="bronze")])
    promote_to_chart(dataset=customers, triggered_by="test")
    held = quarantined_by_raw(customers)
    client.force_login(steward)

    listed = search(client, "")
    html = listed.content.decode()
    assert "Business key" in html and 'class="field-business_key">2</td>' in html
    assert "The business key as the list shows it" in html  # the search help text
    assert found(client, "2") == {held[raws[0].pk].pk}
    assert found(client, " 3 ") == {held[raws[1].pk].pk}
    assert found(client, "+3") == {held[raws[1].pk].pk}  # typed as the contract types it
    assert found(client, "4") == set()
    assert found(client, "two") == set()  # no integer: no key of this dataset
    assert found(client, "2 | 3") == set()  # more values than the key has
    assert found(client, "2", dataset__id__exact=customers.pk) == {held[raws[0].pk].pk}


def test_a_key_of_several_fields_is_searched_whole_or_by_its_first_values(
    client, steward, customers, land
):
    keyed(customers, "id", "signup")
    raws = land(
        customers,
        [
            row(id="2", signup="2026-01-02", tier="bronze"),
            row(id="2", signup="2026-01-03", tier="bronze"),
            row(id="21", signup="2026-01-02", tier="bronze"),
        ],
    )
    promote_to_chart(dataset=customers, triggered_by="test")
    held = quarantined_by_raw(customers)
    first, second, other = (held[raw.pk].pk for raw in raws)
    client.force_login(steward)
    assert 'class="field-business_key">2 | 2026-01-02</td>' in search(client, "").content.decode()
    assert found(client, "2 | 2026-01-02") == {first}
    assert found(client, "2|2026-01-03") == {second}
    assert found(client, "2") == {first, second}  # every key starting with 2|, not 21
    assert found(client, "21") == {other}
    assert found(client, "2 | 2026-01-04") == set()
    assert found(client, "2 |") == set()


def test_a_key_the_reader_may_not_see_is_masked_and_cannot_be_probed(
    client, steward, customers, land, django_user_model
):
    keyed(customers, "email")  # confidential: stewards are not cleared for it
    land(customers, [row(tier="bronze")])
    promote_to_chart(dataset=customers, triggered_by="test")
    record = QuarantinedRecord.objects.get(dataset=customers)
    assert record.business_key == "ada@example.com"
    client.force_login(steward)

    response = search(client, "")
    assert "ada@example.com" not in response.content.decode()
    assert 'class="field-business_key">***************</td>' in response.content.decode()
    response = search(client, "ada@example.com")
    assert list(response.context["cl"].result_list) == []
    assert "Not searched by business key in orders" in response.content.decode()
    # The record's page shows it masked as well.
    page = client.get(reverse("admin:chart_quarantinedrecord_change", args=[record.pk]))
    assert "ada@example.com" not in page.content.decode()

    clear(DATA_STEWARD, "confidential")
    client.force_login(django_user_model.objects.get(pk=steward.pk))  # permissions re-read
    response = search(client, "ada@example.com")
    assert {obj.pk for obj in response.context["cl"].result_list} == {record.pk}
    assert 'class="field-business_key">ada@example.com</td>' in response.content.decode()
    assert "Not searched" not in response.content.decode()


def test_a_restricted_key_is_searched_by_its_token_by_who_may_reveal_it(
    client, steward, superuser, customers, land, settings
):
    keyed(customers, "ssn")
    land(customers, [row(tier="bronze")])
    promote_to_chart(dataset=customers, triggered_by="test")
    record = QuarantinedRecord.objects.get(dataset=customers)
    assert record.business_key == TokenKeyring.from_settings().token(SSN)

    client.force_login(steward)  # not cleared for restricted: no probing
    response = search(client, SSN)
    assert list(response.context["cl"].result_list) == []
    assert "Not searched by business key in orders" in response.content.decode()

    client.force_login(superuser)  # cleared: may reveal restricted values
    response = search(client, SSN)
    html = response.content.decode()
    assert {obj.pk for obj in response.context["cl"].result_list} == {record.pk}
    cells = re.findall(r"<td[^>]*>(.*?)</td>", html[html.index('id="result_list"') :])
    assert "[encrypted]" in cells
    assert not [cell for cell in cells if SSN in cell]  # (links keep the search typed)
    assert record.business_key not in html
    assert found(client, "123-45-6780") == set()

    # While a new hash key is put first (before `retoken`), the old token still matches.
    new_key = base64.b64encode(b"N" * 32).decode()
    with override_settings(ATLAS_HASH_KEY=f"new:{new_key},{settings.ATLAS_HASH_KEY}"):
        assert found(client, SSN) == {record.pk}


def test_the_export_protects_the_key_as_the_list_does(client, steward, customers, land):
    keyed(customers, "email")
    land(customers, [row(tier="bronze")])
    promote_to_chart(dataset=customers, triggered_by="test")
    record = QuarantinedRecord.objects.get(dataset=customers)
    client.force_login(steward)
    response = client.post(
        reverse(CHANGELIST),
        {"action": "export_selected_as_csv", ACTION_CHECKBOX_NAME: [str(record.pk)]},
    )
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["business key"] for r in rows] == ["***************"]
