"""The admin's *Infer a contract from a sample*: upload, edit the proposal, save or download."""

import pytest
import yaml
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from governance.compliance.models import AuditLog
from governance.pipeline.models import Dataset

pytestmark = pytest.mark.django_db

URL = "admin:pipeline_dataset_infer_contract"

SAMPLE = (
    "order_id,email,status,total,placed_on\n"
    + "".join(
        f"{5000 + n},buyer{n}@example.com,{['open', 'paid', 'shipped'][n % 3]},"
        f"{10 + n * 2.5:.2f},2024-04-{1 + n:02d}\n"
        for n in range(12)
    )
).encode()


def upload(client, content=SAMPLE, filename="orders.csv", slug="web-orders", name=""):
    return client.post(
        reverse(URL),
        {"file": SimpleUploadedFile(filename, content), "slug": slug, "name": name},
    )


def submitted(page, step="save", **changes):
    """The proposal page's form as the browser would send it, with `changes` applied
    ({"fields-2-minimum": "x"}, {"slug": ...}); unchecked boxes are left out."""
    formset = page.context["formset"]
    data = {
        "step": step,
        "slug": page.context["proposal"].initial["slug"],
        "name": page.context["proposal"].initial["name"],
        "evidence": page.context["proposal"].initial["evidence"],
        "fields-TOTAL_FORMS": str(formset.total_form_count()),
        "fields-INITIAL_FORMS": str(formset.initial_form_count()),
    }
    for index, form in enumerate(formset.forms):
        for key, value in form.initial.items():
            if value is True:
                data[f"fields-{index}-{key}"] = "on"
            elif value is not False:
                data[f"fields-{index}-{key}"] = str(value)
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def test_only_who_may_add_datasets_infers_a_contract(client, viewer, steward):
    client.force_login(viewer)
    assert client.get(reverse(URL)).status_code == 403
    assert upload(client).status_code == 403
    listing = client.get(reverse("admin:pipeline_dataset_changelist")).content.decode()
    assert "Infer a contract from a sample" not in listing
    client.force_login(steward)
    listing = client.get(reverse("admin:pipeline_dataset_changelist")).content.decode()
    assert "Infer a contract from a sample" in listing
    page = client.get(reverse(URL))
    assert page.status_code == 200 and "the first 10000 records are read" in page.content.decode()


def test_the_proposal_shows_each_field_with_its_evidence_and_no_personal_value(client, steward):
    client.force_login(steward)
    page = upload(client)
    assert page.status_code == 200
    html = page.content.decode()
    rows = {form.initial["name"]: form.initial for form in page.context["formset"].forms}
    assert list(rows) == ["order_id", "email", "status", "total", "placed_on"]
    assert rows["order_id"]["data_type"] == "integer" and rows["order_id"]["unique"]
    assert rows["order_id"]["minimum"] == "5000" and rows["order_id"]["maximum"] == "5011"
    assert rows["status"]["data_type"] == "enum"
    assert rows["status"]["allowed_values"] == "open\npaid\nshipped"
    assert rows["total"]["data_type"] == "decimal" and rows["total"]["maximum"] == "37.5"
    assert rows["placed_on"]["data_type"] == "date"
    assert rows["email"]["data_type"] == "email"
    assert rows["email"]["classification"] == "confidential"
    assert rows["email"]["allowed_values"] == "" and rows["email"]["max_length"] == ""
    # Evidence: counts, PII types with their counts, masked examples; never an address.
    assert "12 of 12 filled, 12 distinct" in html
    assert "PII in 12 values:" in html and "email 12" in html
    assert "b***@example.com" in html
    for n in range(12):
        assert f"buyer{n}@example.com" not in html
    assert "would put personal values into the contract" in html
    assert not Dataset.objects.exists()


def test_saving_the_edited_proposal_creates_the_dataset_through_the_import(client, steward):
    client.force_login(steward)
    page = upload(client, name="Web orders")
    data = submitted(
        page,
        **{
            "fields-3-minimum": "0",  # total: from 0, not from the sample's lowest
            "fields-4-required": None,  # placed_on: not required after all
            "fields-2-allowed_values": "open\npaid\nshipped\nreturned",
        },
    )
    done = client.post(reverse(URL), data, follow=True)
    dataset = Dataset.objects.get(slug="web-orders")
    assert done.redirect_chain[-1][0] == reverse("admin:pipeline_dataset_change", args=[dataset.pk])
    assert "web-orders: created with 5 fields, as inferred from orders.csv." in (
        done.content.decode().lower()  # the admin capitalises a message's first letter
    )
    assert dataset.name == "Web orders"
    stored = {f.name: f for f in dataset.fields.select_related("classification")}
    assert stored["total"].minimum == 0 and stored["total"].maximum == 37.5
    assert not stored["placed_on"].required and stored["order_id"].required
    assert stored["status"].allowed_values == ["open", "paid", "shipped", "returned"]
    assert stored["email"].classification.name == "confidential"
    entry = AuditLog.objects.get(object_type="pipeline.dataset", object_id=str(dataset.pk))
    assert entry.actor == "steward"
    assert entry.detail.startswith("contract imported from a sample file (orders.csv)")


def test_errors_are_shown_on_the_page_with_their_place_and_nothing_is_written(client, steward):
    client.force_login(steward)
    page = upload(client)
    data = submitted(
        page,
        **{
            "fields-0-keep": None,  # order_id left out: the fields after it move up
            "fields-3-minimum": "ten",
            "fields-1-name": "e mail",
        },
    )
    again = client.post(reverse(URL), data)
    assert again.status_code == 200
    errors = again.context["errors"]
    assert "fields[2].minimum: expected a number, got 'ten'" in errors
    assert any(error.startswith("fields[0].name:") for error in errors)
    # Each error also on the row it names.
    rows = again.context["rows"]
    assert rows[3]["errors"] == ["fields[2].minimum: expected a number, got 'ten'"]
    assert rows[1]["errors"] and rows[1]["errors"][0].startswith("fields[0].name:")
    assert rows[0]["errors"] == [] and rows[2]["errors"] == []
    html = again.content.decode()
    assert 'id="contract-errors"' in html and 'value="ten"' in html  # the edit kept
    assert "12 of 12 filled" in html  # the evidence still beside the rows
    assert not Dataset.objects.exists()
    assert not AuditLog.objects.filter(object_type="pipeline.dataset").exists()

    # A slug taken meanwhile: refused at save, by the same path.
    Dataset.objects.create(slug="web-orders", name="Taken")
    taken = client.post(reverse(URL), submitted(page))
    assert taken.context["errors"][0].startswith("dataset.slug: 'web-orders' is already a dataset")
    assert Dataset.objects.get(slug="web-orders").fields.count() == 0


def test_the_proposal_downloads_as_the_contract_file_saving_would_create(client, steward):
    client.force_login(steward)
    page = upload(client)
    response = client.post(reverse(URL), submitted(page, step="download"))
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="web-orders.contract.yaml"'
    document = yaml.safe_load(response.content)
    assert document["atlas_contract"] == 1 and document["dataset"]["slug"] == "web-orders"
    email = next(f for f in document["fields"] if f["name"] == "email")
    assert email == {
        "name": "email",
        "type": "email",
        "required": True,
        "unique": True,
        "classification": "confidential",
    }
    assert not Dataset.objects.exists()
    assert not AuditLog.objects.filter(object_type="pipeline.dataset").exists()


def test_a_bad_sample_or_slug_is_refused_on_the_upload_page(client, steward, dataset):
    client.force_login(steward)
    page = upload(client, content=b"id,first name\n1,x\n")
    html = page.content.decode()
    assert 'id="sample-errors"' in html
    assert "line 1, column 2: &#x27;first name&#x27; is not a valid field name" in html
    page = upload(client, slug=dataset.slug)
    assert "&#x27;orders&#x27; is already a dataset" in page.content.decode()
    assert "proposal" not in page.context


def test_an_altered_proposal_is_refused(client, steward):
    client.force_login(steward)
    page = upload(client)
    data = submitted(page, evidence=page.context["proposal"].initial["evidence"] + "x")
    refused = client.post(reverse(URL), data)
    assert refused.status_code == 400
    assert "expired or was altered" in refused.content.decode()
    data = submitted(page, **{"fields-0-column": "99"})
    assert client.post(reverse(URL), data).status_code == 400
    assert not Dataset.objects.exists()
