"""Business keys of quarantined records, made exactly as chart makes its records' keys.

A chart record's business key is its key fields' typed values joined by "|", a part
that chart holds encrypted or tagged replaced by its keyed token (the evaluator's
`protect_values`, chart.evaluation). A quarantined record carries the same key, so the
quarantine review can show it and find the records of one key among millions:

- a promotion writes the key its verdict already holds (chart.writing);
- re-processing writes the key of the new verdict, and a correction of a key field the
  key of the corrected copy (chart.reprocess);
- records quarantined before the column existed get theirs from the migration
  `chart.0008_quarantine_business_key` (`fill_quarantine_keys`), and a dataset's are made
  again when its values are re-protected (chart.reprotect) or tokens re-made under a new
  hash key (`manage.py retoken`);
- when a dataset's key is made of other fields, its quarantined records' keys are emptied
  at once (each part is shown at its field's level, and the old parts are not the new
  fields' values) and made again by a queued re-protect run (`follow_key_definition`);
- the review's search turns what a steward types into the same key (chart.selectors).

As in chart, a record without its whole key (a key field missing, or failing its type
or its contract) has none: ''.
"""

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from copy import copy
from dataclasses import replace
from typing import Any

from django.db import connection

from atlas_site.schemas import sql_table
from chart.contract import CompiledContract
from chart.evaluation import RecordEvaluator
from chart.judging import build_evaluator
from chart.models import BUSINESS_KEY_LENGTH, QuarantinedRecord
from chart.protected import corrected_context
from explore.models import RawRecord
from governance.compliance.keys import Keyring, is_encrypted
from governance.compliance.tokens import TOKEN_PREFIX, TokenKeyring
from governance.pipeline.models import Dataset
from governance.pipeline.services import request_reprotect

FILL_CHUNK_SIZE = 2000


def follow_key_definition(sender, instance: Dataset, raw: bool = False, **kwargs) -> None:
    """Before a dataset is saved with a key of other fields: its quarantined records' keys
    emptied, and a re-protect run queued that makes them again (chart.reprotect).

    Connected to Dataset's pre_save (chart.apps): the admin's form, a contract import and
    any other save alike, in the saving transaction.
    """
    if raw or instance.pk is None:
        return
    before = Dataset.objects.filter(pk=instance.pk).values_list("business_key", flat=True).first()
    if before is None or list(before) == list(instance.business_key or []):
        return
    emptied = (
        QuarantinedRecord.objects.filter(dataset_id=instance.pk)
        .exclude(business_key="")
        .update(business_key="")
    )
    if emptied:
        request_reprotect(
            dataset=instance,
            triggered_by="business key changed",
            reason=f"the business key is now {', '.join(instance.business_key or []) or 'none'}: "
            f"the keys of {emptied} quarantined records are made again",
        )


class KeyMaker:
    """A dataset's business key of any payload, through its evaluator: built once per use."""

    def __init__(self, dataset: Dataset, evaluator: RecordEvaluator | None = None):
        self.dataset_id = dataset.pk
        self.evaluator = evaluator if evaluator is not None else build_evaluator(dataset, [])
        self.names: list[str] = list(self.evaluator.business_key)
        rules = {rule.name: rule for rule in self.evaluator.contract.rules}
        # Only the key's fields are typed: each field is checked on its own, so their
        # typed values are those the whole contract gives.
        self._contract = CompiledContract([rules[name] for name in self.names if name in rules])

    def key(self, payload: Any) -> str:
        """The business key of a payload (a raw record, or a steward's corrected copy)."""
        return self.key_of(payload, len(self.names))

    def key_of(self, payload: Any, parts: int, *, token_key_id: str | None = None) -> str:
        """The key made of the first `parts` key fields ('' when one of them has no value).

        `token_key_id`: tokens made under that hash key rather than the current one (a
        lookup during a key rotation).
        """
        names = self.names[:parts]
        if not names or not isinstance(payload, Mapping):
            return ""
        typed = self._contract.check({name: payload.get(name) for name in names}).data
        if any(typed.get(name) is None for name in names):
            return ""  # saves protecting values that make no key
        evaluator = self.evaluator
        if parts != len(self.names) or token_key_id is not None:
            # The evaluator's own key, over fewer fields or under another hash key.
            evaluator = copy(evaluator)
            evaluator.business_key = names
            if token_key_id is not None:
                evaluator.token_keyring = replace(evaluator.token_keyring, current_id=token_key_id)
        return evaluator.protect_values({name: typed[name] for name in names}, {}).business_key

    def keys_under_every_hash_key(self, payload: Any, parts: int) -> list[str]:
        """The key under each listed hash key (they differ only where a part is a token):
        what a search matches while a rotation is under way."""
        keys = {
            self.key_of(payload, parts, token_key_id=key_id)
            for key_id in self.evaluator.token_keyring.keys
        }
        return sorted(key for key in keys if key)


class KeyMakers:
    """Key makers by dataset id, each built on first use: for work spanning records."""

    def __init__(self) -> None:
        self._datasets: dict[int, Dataset] = {}
        self._makers: dict[int, KeyMaker] = {}

    def key_fields(self, dataset_id: int) -> list[str]:
        """The dataset's business key fields (one query per dataset, no evaluator)."""
        dataset = self._datasets.get(dataset_id)
        if dataset is None:
            dataset = self._datasets[dataset_id] = Dataset.objects.get(pk=dataset_id)
        return list(dataset.business_key)

    def __call__(self, dataset_id: int) -> KeyMaker:
        maker = self._makers.get(dataset_id)
        if maker is None:
            self.key_fields(dataset_id)
            maker = self._makers[dataset_id] = KeyMaker(self._datasets[dataset_id])
        return maker


def storable_key(key: str) -> str:
    """The key as a quarantined record keeps it: one too long to index is not kept."""
    return key if len(key) <= BUSINESS_KEY_LENGTH else ""


def payload_for_key(
    raw_payload: Any, corrected: Mapping[str, Any] | None, *, dataset_id: int, keyring: Keyring
) -> Any:
    """What a quarantined record's key is made of: its corrected copy (values of encrypted
    fields decrypted), else the payload received."""
    if corrected is None:
        return raw_payload
    return {
        name: keyring.decrypt(value, context=corrected_context(dataset_id, name))
        if is_encrypted(value)
        else value
        for name, value in corrected.items()
    }


def fill_quarantine_keys(
    *, datasets: Iterable[Dataset] | None = None, chunk_size: int = FILL_CHUNK_SIZE
) -> int:
    """Make again the business key of every quarantined record of these datasets (every
    dataset, by default); returns how many records' keys changed.

    Dataset by dataset, along the (dataset, raw record) unique index, `chunk_size`
    records at a time: each chunk reads its payloads with one query and writes its keys
    with one UPDATE. Keys need the contract's typing and keyed tokens (whose key never
    goes to the database), so they are made here, by the evaluator, not in SQL. A
    dataset without a business key is skipped: its records keep ''.
    """
    changed = 0
    keyring = None
    chosen = Dataset.objects.all() if datasets is None else datasets
    for dataset in sorted(chosen, key=lambda dataset: dataset.pk):
        if not dataset.business_key:
            continue
        maker: KeyMaker | None = None
        for rows in _quarantined_payloads(dataset.pk, chunk_size):
            maker = maker or KeyMaker(dataset)
            keyring = keyring or Keyring.from_settings()
            keys = {
                record_id: storable_key(
                    maker.key(
                        payload_for_key(payload, corrected, dataset_id=dataset.pk, keyring=keyring)
                    )
                )
                for record_id, payload, corrected in rows
            }
            changed += write_keys(keys)
    return changed


def refill_keys_with_old_tokens(*, chunk_size: int = FILL_CHUNK_SIZE) -> int:
    """After a hash key rotation (`manage.py retoken`): the keys of the datasets whose
    quarantined records hold a token under another key, made again under the current one.
    Returns how many records' keys changed."""
    current = TokenKeyring.from_settings().current_id
    stale = (
        QuarantinedRecord.objects.filter(business_key__contains=TOKEN_PREFIX)
        .exclude(business_key__contains=f"{TOKEN_PREFIX}{current}:")
        .values("dataset_id")
    )
    return fill_quarantine_keys(
        datasets=Dataset.objects.filter(pk__in=stale), chunk_size=chunk_size
    )


def _quarantined_payloads(
    dataset_id: int, chunk_size: int
) -> Iterator[list[tuple[int, Any, dict | None]]]:
    """(quarantined id, raw payload, corrected payload) of a dataset's records, by chunks."""
    quarantine, raw = sql_table(QuarantinedRecord), sql_table(RawRecord)
    after = 0
    while True:
        with connection.cursor() as cursor:
            # Along quarantine_once (dataset, raw record); each raw record through its
            # (dataset, id) index.
            cursor.execute(
                f"""
                SELECT q.id, q.raw_record_id, r.payload::text, q.corrected_payload::text
                  FROM (SELECT id, raw_record_id, corrected_payload
                          FROM {quarantine}
                         WHERE dataset_id = %(dataset)s AND raw_record_id > %(after)s
                         ORDER BY raw_record_id LIMIT %(limit)s) AS q
                  LEFT JOIN {raw} AS r ON r.dataset_id = %(dataset)s AND r.id = q.raw_record_id
                 ORDER BY q.raw_record_id
                """,
                {"dataset": dataset_id, "after": after, "limit": chunk_size},
            )
            rows = cursor.fetchall()
        if not rows:
            return
        after = rows[-1][1]
        yield [
            (
                record_id,
                None if payload is None else json.loads(payload),
                None if corrected is None else json.loads(corrected),
            )
            for record_id, _raw_id, payload, corrected in rows
        ]


def write_keys(keys: Mapping[int, str]) -> int:
    """Set the business key of quarantined records (id -> key) with one UPDATE."""
    if not keys:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {sql_table(QuarantinedRecord)} AS q SET business_key = k.key
              FROM unnest(%s::bigint[], %s::text[]) AS k(id, key)
             WHERE q.id = k.id AND q.business_key IS DISTINCT FROM k.key
            """,
            [list(keys), list(keys.values())],
        )
        return cursor.rowcount


def key_parts(business_key: str, names: Sequence[str]) -> list[tuple[str, str]] | None:
    """(field, part) of a stored key; None when its parts cannot be told apart (a value
    holding "|", or a key made under another definition of the dataset's key)."""
    parts = business_key.split("|")
    if len(parts) != len(names):
        return None
    return list(zip(names, parts, strict=True))
