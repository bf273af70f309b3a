"""An S3 protocol peer for tests: a moto server started once per session, and the default
storage switched to a bucket of a test's own on it (`s3_storage`). Registered for every
test by the root conftest."""

import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from atlas_site.testing.services import free_port


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory):
    port = free_port()
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    moto_server = Path(sys.executable).parent / "moto_server"
    with log_path.open("wb") as log:
        server = subprocess.Popen(  # noqa: S603 - the venv's own moto_server
            [str(moto_server), "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"moto_server did not start:\n{log_path.read_text()}")
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def s3_storage(moto_endpoint, settings):
    """The default storage switched to S3 on the moto server, in a bucket of this test's own."""
    import boto3

    bucket = f"atlas-test-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto accepts any key
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=bucket)
    settings.STORAGES = {
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "endpoint_url": moto_endpoint,
                "bucket_name": bucket,
                "access_key": "testing",
                "secret_key": "testing",
                "region_name": "us-east-1",
                "file_overwrite": False,
                "default_acl": None,
            },
        },
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    return {"client": client, "bucket": bucket}
