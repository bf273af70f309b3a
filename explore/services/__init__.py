"""Writes of the explore layer: files land in object storage, then load into raw records.

The path of a file:
1. `store_upload` (or `store_records` for records posted to the API) checks the
   file and refuses, before writing anything, one that cannot be loaded: empty,
   over ATLAS_MAX_UPLOAD_BYTES, an unknown format, a CSV without header, a file
   this dataset already received (same SHA-256, of the bytes as received). Otherwise
   it stores the file encrypted (envelope encryption, governance.compliance.envelope)
   in the default storage (S3 or the filesystem), creates its LandingBatch with the
   key id that wraps the file's data key, audits it, and says the batch waits for its
   load (`explore.signals.batch_waiting`: the orchestration app sends the load task
   once the transaction commits).
2. The Celery task calls `load_batch`, which streams the stored file through
   decryption and a parser (explore.parsers) into raw records with COPY
   (explore.copy_writer). Files stored before encryption are read as they are.

A load is bounded: a file that decompresses past ATLAS_MAX_DECOMPRESSED_BYTES, holds
more than ATLAS_MAX_LINES_PER_BATCH lines or takes longer than ATLAS_MAX_LOAD_SECONDS
to read fails with a reason naming the cap, and keeps no raw record (a gzip bomb of a
few kilobytes cannot become millions of rows or keep a worker busy for long).

A load is idempotent and crash-safe. A session advisory lock makes one loader per
batch (a killed worker's connection closes and frees it); a conditional UPDATE
claims the batch (stored or interrupted -> loading) and must change exactly one
row; all raw records, the counts, the batch's raw id range and the 'loaded' status
commit in one transaction. A task delivered twice, or again after its worker died
mid-load, ends with each line exactly once.

One module each: `receiving` (checks, refusals, storing, retry), `loading` (a stored file
into raw records), `key_rotation` (stored files re-wrapped), `api_tokens`. What other
apps and pages use is named here too, so `from explore import services` reads as before.
"""

from explore.services.api_tokens import (
    check_token_terms,
    default_token_expiry,
    issue_api_token,
    revoke_api_token,
    touch_api_token,
)
from explore.services.key_rotation import RewrapError, rewrap_batch_file
from explore.services.loading import (
    load_batch,
    max_decompressed_bytes,
    max_lines_per_batch,
    max_load_seconds,
    max_record_bytes,
    open_batch_file,
)
from explore.services.receiving import (
    BatchNotRetryableError,
    DuplicateFileError,
    FileTooLargeError,
    IngestError,
    Inspection,
    inspect_upload,
    max_upload_bytes,
    retry_batch,
    store_records,
    store_upload,
)

__all__ = [
    "BatchNotRetryableError",
    "DuplicateFileError",
    "FileTooLargeError",
    "IngestError",
    "Inspection",
    "RewrapError",
    "check_token_terms",
    "default_token_expiry",
    "inspect_upload",
    "issue_api_token",
    "load_batch",
    "max_decompressed_bytes",
    "max_lines_per_batch",
    "max_load_seconds",
    "max_record_bytes",
    "max_upload_bytes",
    "open_batch_file",
    "retry_batch",
    "revoke_api_token",
    "rewrap_batch_file",
    "store_records",
    "store_upload",
    "touch_api_token",
]
