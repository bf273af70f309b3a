"""Object storage over the S3 protocol (a moto server): store, then load by streaming."""

import gzip
import hashlib

import pytest

from explore import services
from explore.models import BatchStatus, RawRecord
from explore.tests.conftest import store
from governance.compliance.envelope import decrypt_bytes

pytestmark = [pytest.mark.s3, pytest.mark.django_db]

CSV = b"id,name,email\n" + b"".join(b"%d,name %d,n%d@example.com\n" % (i, i, i) for i in range(500))


def test_store_and_load_through_s3(s3_storage, customers):
    content = gzip.compress(CSV)
    batch = store(customers, content, "customers.csv.gz")

    key = batch.file.name
    assert key.startswith(f"landing/customers/{batch.received_at:%Y/%m/%d}/{batch.key}/")
    stored = s3_storage["client"].get_object(Bucket=s3_storage["bucket"], Key=key)["Body"].read()
    # Stored encrypted; the batch's sha256 is that of the file as received.
    assert decrypt_bytes(stored) == content
    assert batch.sha256 == hashlib.sha256(content).hexdigest()

    run = services.load_batch(batch_id=batch.pk)
    batch.refresh_from_db()
    assert batch.status == BatchStatus.LOADED, batch.error
    assert (batch.rows_total, batch.rows_parsed, batch.rows_failed) == (500, 500, 0)
    assert RawRecord.objects.filter(batch=batch).count() == 500
    assert run.detail["file"] == key


def test_a_missing_object_fails_the_batch_with_the_reason(s3_storage, customers):
    batch = store(customers, CSV, "customers.csv")
    s3_storage["client"].delete_object(Bucket=s3_storage["bucket"], Key=batch.file.name)
    services.load_batch(batch_id=batch.pk)
    batch.refresh_from_db()
    assert batch.status == BatchStatus.FAILED
    assert batch.error.startswith("could not read the stored file")
