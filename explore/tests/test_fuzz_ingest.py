"""Fuzzing ingestion and the API: random bytes, huge lines, deep JSON, odd encodings, NULs.

Each input goes through an entry point a client uses (the service behind the admin
upload and `manage.py ingest`, the admin upload page, the API) and must end one of
two ways: refused with a clear error and nothing written, or stored and loaded with
every line kept (read, or failed with its error). Never a 500, never a batch whose
rows_total differs from the lines it holds, never a batch left half-way.

Bounded and derandomized (atlas_site.testing.fuzz, profile "ci"); each test prints
the cases it tried and the rows it checked.
"""

import io
import json
from collections import Counter
from urllib.parse import quote

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from atlas_site.testing.fuzz import deep_json, examples, hostile_text, report, upload
from explore import services
from explore.models import BatchStatus, LandingBatch, RawRecord

pytestmark = pytest.mark.django_db


def check_batch(batch: LandingBatch) -> int:
    """A landed batch is whole: loaded with every line, or failed with nothing kept.

    Returns the rows checked.
    """
    batch.refresh_from_db()
    rows = RawRecord.objects.filter(batch=batch, received_at=batch.received_at)
    if batch.status == BatchStatus.FAILED:
        assert batch.error, "a failed batch says why"
        assert not rows.exists(), "a failed batch keeps no rows"
        return 0
    assert batch.status == BatchStatus.LOADED, (batch.status, batch.error)
    counts = Counter(
        "failed" if error else "parsed" for error in rows.values_list("parse_error", flat=True)
    )
    assert batch.rows_total == rows.count() == batch.rows_parsed + batch.rows_failed
    assert (counts["parsed"], counts["failed"]) == (batch.rows_parsed, batch.rows_failed)
    assert not rows.filter(parse_error="", payload__isnull=True).exists()
    assert not rows.exclude(parse_error="").filter(payload__isnull=False).exists()
    numbers = list(rows.values_list("line_number", flat=True))
    assert len(numbers) == len(set(numbers)), "a line landed twice"
    return batch.rows_total


def land(batch: LandingBatch) -> int:
    services.load_batch(batch_id=batch.pk, triggered_by="fuzz")
    rows = check_batch(batch)
    default_storage.delete(batch.file.name)
    return rows


@pytest.fixture
def small_records(settings):
    # "Huge" lines relative to a small limit: the same code paths, in little time.
    settings.ATLAS_MAX_RECORD_BYTES = 2048


def test_fuzzed_files_are_refused_clearly_or_land_whole(customers, small_records):
    figures = Counter()

    @hypothesis_settings(max_examples=examples(150))
    @given(case=upload())
    def run(case):
        name, data = case
        figures["cases"] += 1
        batches_before = LandingBatch.objects.count()
        try:
            batch = services.store_upload(
                dataset=customers, file=io.BytesIO(data), filename=name, actor="fuzz", via="cli"
            )
        except services.IngestError as refusal:
            assert str(refusal), "a refusal says why"
            assert LandingBatch.objects.count() == batches_before, "a refusal writes nothing"
            figures["refused"] += 1
            return
        figures["landed"] += 1
        figures["rows_checked"] += land(batch)

    run()
    report("ingest (service)", **figures)


def test_huge_lines_and_deep_json_land_as_failed_lines(customers, settings):
    settings.ATLAS_MAX_RECORD_BYTES = 64 * 1024
    lines = [
        json.dumps({"id": 1, "name": "ok"}),
        json.dumps({"id": 2, "name": "x" * (1024 * 1024)}),  # 1 MiB: over the limit
        deep_json(5000, "object"),  # 25 KB, nested deeper than Python's parser goes
        deep_json(900, "object"),  # as deep as it goes: lands as it came
        json.dumps({"id": 3, "name": "after"}),
    ]
    batch = services.store_upload(
        dataset=customers,
        file=io.BytesIO("\n".join(lines).encode()),
        filename="deep.jsonl",
        actor="fuzz",
    )
    assert land(batch) == 5
    rows = {
        number: (error, payload)
        for number, error, payload in RawRecord.objects.filter(batch=batch).values_list(
            "line_number", "parse_error", "payload"
        )
    }
    assert rows[1] == ("", {"id": 1, "name": "ok"})
    assert rows[2][0] == "line 2 is longer than 65536 bytes; its text is cut at that length"
    assert rows[3][0].startswith("invalid JSON: maximum recursion depth exceeded")
    assert rows[3][1] is None
    assert rows[4] == ("", json.loads(lines[3]))
    assert rows[5] == ("", {"id": 3, "name": "after"})


def test_odd_encodings_land_or_say_which_byte(customers):
    text = "id,name\n1,Zo\u00eb\n2,\u00c5sa\n"
    outcomes = {}
    for encoding in ("utf-8", "utf-8-sig", "utf-16", "utf-16-le", "latin-1"):
        try:
            batch = services.store_upload(
                dataset=customers,
                file=io.BytesIO(text.encode(encoding)),
                filename=f"{encoding}.csv",
                actor="fuzz",
            )
        except services.IngestError as refusal:
            outcomes[encoding] = f"refused: {refusal}"
            continue
        land(batch)
        outcomes[encoding] = sorted(
            RawRecord.objects.filter(batch=batch).values_list("line_number", "parse_error")
        )
    assert outcomes["utf-8"] == outcomes["utf-8-sig"] == [(2, ""), (3, "")]
    # UTF-16, with its byte order mark or without, is refused at the door, saying so.
    utf16 = "refused: the file is encoded in UTF-16 (or UTF-32), not UTF-8"
    assert outcomes["utf-16"].startswith(utf16)
    assert outcomes["utf-16-le"].startswith(utf16)
    # latin-1: the header is ASCII, so the file lands; each line says which byte is wrong.
    assert outcomes["latin-1"] == [
        (2, "line 2 is not valid UTF-8 (byte 5: invalid continuation byte)"),
        (3, "line 3 is not valid UTF-8 (byte 3: invalid continuation byte)"),
    ]


@pytest.mark.parametrize("content", [b"id\r,", b"id,name\r1,Ann\r2,Bob\r"])
def test_a_carriage_return_inside_the_header_is_refused_clearly(customers, content):
    """Found by fuzzing: a CR that does not end the header line answered 500."""
    with pytest.raises(services.IngestError, match=r"carriage return \(CR\)"):
        services.store_upload(
            dataset=customers, file=io.BytesIO(content), filename="cr.csv", actor="fuzz"
        )
    assert not LandingBatch.objects.exists()


# --- The same through the admin upload page and the API ---------------------------------------


@pytest.fixture
def token(steward, customers):
    customers.owner = steward
    customers.save()
    return services.issue_api_token(user=steward, name="fuzz", actor=steward)[1]


def test_fuzzed_uploads_through_the_admin_and_the_api(
    client, steward, token, customers, small_records
):
    figures = Counter()

    @hypothesis_settings(max_examples=examples(60))
    @given(case=upload(), via=st.sampled_from(["admin", "api"]))
    def run(case, via):
        name, data = case
        figures[f"{via}_cases"] += 1
        before = set(LandingBatch.objects.values_list("pk", flat=True))
        if via == "admin":
            client.force_login(steward)
            response = client.post(
                f"/admin/pipeline/dataset/{customers.pk}/ingest/",
                {"file": SimpleUploadedFile(name, data)},
            )
            assert response.status_code in (200, 302), response.status_code
        else:
            response = client.post(
                "/api/datasets/customers/files",
                {"file": SimpleUploadedFile(name, data)},
                HTTP_AUTHORIZATION=f"Bearer {token}",
            )
            assert response.status_code in (202, 400, 409, 413), response.content[:500]
            if response.status_code != 202:
                assert response.json()["detail"]
        new = LandingBatch.objects.exclude(pk__in=before)
        assert new.count() <= 1
        for batch in new:
            figures["rows_checked"] += land(batch)

    run()
    report("ingest (admin upload and API upload)", **figures)


RECORD_BODIES = st.one_of(
    st.binary(max_size=2000),
    hostile_text.map(str.encode),
    st.integers(1, 5000).map(lambda depth: deep_json(depth).encode()),
    st.integers(1, 5000).map(lambda depth: ("[" + deep_json(depth, "object") + "]").encode()),
    st.lists(st.dictionaries(hostile_text, hostile_text, max_size=4), max_size=5).map(
        lambda records: json.dumps(records).encode()
    ),
)
CONTENT_TYPES = st.sampled_from(
    ["application/json", "text/plain", "application/x-www-form-urlencoded"]
)


def test_fuzzed_record_posts_answer_json_never_500(client, token, small_records):
    figures = Counter()

    @hypothesis_settings(max_examples=examples(80))
    @given(body=RECORD_BODIES, content_type=CONTENT_TYPES)
    def run(body, content_type):
        figures["cases"] += 1
        before = set(LandingBatch.objects.values_list("pk", flat=True))
        response = client.post(
            "/api/datasets/customers/records",
            body,
            content_type=content_type,
            HTTP_AUTHORIZATION=f"Bearer {token}",
        )
        assert response.status_code in (202, 400, 409, 413, 415, 422), (
            response.status_code,
            response.content[:500],
        )
        assert response["Content-Type"].startswith("application/json")
        if response.status_code != 202:
            assert response.json()["detail"]
        for batch in LandingBatch.objects.exclude(pk__in=before):
            figures["rows_checked"] += land(batch)

    run()
    report("API record posts", **figures)


def test_fuzzed_api_paths_answer_4xx(client, token):
    figures = Counter()

    @hypothesis_settings(max_examples=examples(40))
    @given(path=hostile_text)
    def run(path):
        figures["cases"] += 1
        segment = quote(path, safe="")
        for url in (f"/api/batches/{segment}", f"/api/datasets/{segment}/records"):
            response = client.get(url, HTTP_AUTHORIZATION=f"Bearer {token}")
            assert response.status_code < 500, (url, response.status_code)

    run()
    report("API paths", **figures)
