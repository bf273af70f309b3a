"""Canaries: distinctive values planted at each classification level, then every page,
export and API answer opened as each role. A canary appears only where the role is
cleared for its level, restricted ones nowhere (they are revealed one at a time), and
never in a log line.

The values go in the way real ones do: landed as raw records, promoted to chart and
quarantine (so check results, findings, suggestions, runs and the audit log get theirs),
corrected by a steward, aggregated into facts. The crawl is generic: every admin and
dashboard URL from the URL resolver, every row of the record models, every admin list
searched, every Reveal page the record pages link to (opened, never posted), every CSV
export the admin offers (and each metric's facts download), every other URL the resolver
has (the API, the probes) with an API token; a new page is covered as soon as it is
routed. What BI reads (the reporting views, `export_facts`) holds only what a reader
without clearance sees. No md5, sha1 or sha256 of a canary appears anywhere either: an
unkeyed fingerprint of a value is as good as the value to whoever can hash guesses.
"""

import hashlib
import html
import io
import logging
import re
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Group, Permission
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.http import StreamingHttpResponse
from django.urls import Resolver404, URLPattern, URLResolver, get_resolver, resolve, reverse

from atlas_site.tests.test_roles_urls import NAMESPACES, build_urls, model_admins, owner_of, routes
from chart.models import ChartRecord, PiiFinding, QuarantinedRecord
from chart.reprocess import correct_quarantined_values
from chart.services import promote_to_chart
from conftest import make_user
from explore import services as ingest
from explore.models import LandingBatch, RawRecord
from governance.compliance.clearance import clearance_codename
from governance.compliance.models import AuditLog, ClassificationLevel, ClassificationSuggestion
from governance.compliance.roles import COMPLIANCE_OFFICER, DATA_STEWARD, VIEWER
from governance.pipeline.models import Dataset, DatasetField, FieldType, Run
from governance.quality.models import CheckResult
from navigate.models import Fact, MetricDefinition
from navigate.reporting import build_reporting_views
from navigate.services import promote_to_navigate

pytestmark = pytest.mark.django_db

CANARY = {
    "public": "CNRYPUBLICq7w1",
    "internal": "CNRYINTERNALz8k2",
    "confidential": "CNRYCONFIDENTx5m3",
    "restricted": "CNRYRESTRICTEDv4n9",
}
EXTRA_CANARY = "CNRYOUTSIDEj6p5"  # a field outside the contract: the highest level
CORRECTED_CANARY = "CNRYCORRECTEDh2r8"  # a steward's correction of a restricted field
LINE_CANARY = "CNRYBROKENLINEb3t6"  # a line that does not parse: the dataset's highest level
# An e-mail address in the unclassified note: PII found (a finding, a suggestion), shown
# only to readers cleared for the level its pattern calls for (confidential).
PII_CANARY = "cnrypiim4d7@example.org"
NAMED = {
    **CANARY,
    "outside": EXTRA_CANARY,
    "corrected": CORRECTED_CANARY,
    "line": LINE_CANARY,
    "pii": PII_CANARY,
}
ALL_CANARIES = list(NAMED.values())
# What a search of an admin list is for: every canary holds it, none is it (the page
# shows the words searched for).
SEARCH = "cnry"
FINGERPRINTS = {
    digest(canary.encode()).hexdigest(): name
    for name, canary in NAMED.items()
    for digest in (hashlib.md5, hashlib.sha1, hashlib.sha256)
}

# Which canaries each role may see somewhere (restricted ones: nobody, anywhere).
ROLES = {
    "viewer": {"public"},
    "steward": {"public", "internal"},
    "officer": {"public", "internal"},
    "cleared_officer": {"public", "internal", "confidential", "pii"},
    "superuser": {"public", "internal", "confidential", "pii"},
}
# Rows of these models are opened one by one; others through the first row, as the
# roles test does.
RECORD_MODELS = (
    RawRecord,
    ChartRecord,
    QuarantinedRecord,
    PiiFinding,
    CheckResult,
    Run,
    AuditLog,
    ClassificationSuggestion,
    Fact,
    LandingBatch,
)


def csv_line(**values) -> str:
    fields = ["pub", "intl", "conf", "restr", "note", "joined", "outside"]
    return ",".join(values.get(name, "") for name in fields)


@pytest.fixture
def planted(dataset, steward, django_user_model):
    """A dataset with a field at each level, its values landed, promoted, corrected."""
    levels = {level.name: level for level in ClassificationLevel.objects.all()}
    dataset.business_key = []
    dataset.save()
    for position, (name, level) in enumerate(
        [("pub", "public"), ("intl", "internal"), ("conf", "confidential"), ("restr", "restricted")]
    ):
        DatasetField.objects.create(
            dataset=dataset,
            name=name,
            position=position,
            data_type=FieldType.STRING,
            max_length=30,
            classification=levels[level],
        )
    DatasetField.objects.create(dataset=dataset, name="note", position=5)
    DatasetField.objects.create(
        dataset=dataset, name="joined", position=6, data_type=FieldType.DATE, required=True
    )
    good = {
        "pub": CANARY["public"],
        "intl": CANARY["internal"],
        "conf": CANARY["confidential"],
        "restr": CANARY["restricted"],
        "note": f"card 4111 1111 1111 1111 on file; mail {PII_CANARY}",
        "joined": "2026-03-14",
        "outside": EXTRA_CANARY,
    }
    too_long = {
        name: f"{value}-{'x' * 30}" for name, value in good.items() if name in CANARY_FIELDS
    }
    content = "\n".join(
        [
            "pub,intl,conf,restr,note,joined,outside",
            csv_line(**good),
            csv_line(**{**good, **too_long}),  # every classified field fails max_length
            f'"{LINE_CANARY},broken',  # an unterminated quote: does not parse
        ]
    )
    batch = ingest.store_upload(
        dataset=dataset,
        file=io.BytesIO(content.encode()),
        filename="canaries.csv",
        actor=steward,
        via="cli",
    )
    ingest.load_batch(batch_id=batch.pk, triggered_by="test")
    promote_to_chart(dataset=dataset, triggered_by="test")
    held = QuarantinedRecord.objects.filter(dataset=dataset).order_by("id").first()
    correct_quarantined_values(record=held, values={"restr": CORRECTED_CANARY}, actor=steward)
    MetricDefinition.objects.create(
        dataset=dataset,
        slug="canaries-per-day",
        name="Canaries per day",
        aggregation="count",
        time_field="joined",
        dimension_fields=["pub", "intl", "conf"],
    )
    promote_to_navigate(dataset=dataset, triggered_by="test")
    assert ChartRecord.objects.filter(dataset=dataset).count() == 1
    assert QuarantinedRecord.objects.filter(dataset=dataset).count() == 2
    assert Fact.objects.filter(metric__dataset=dataset).exists()
    assert PiiFinding.objects.filter(dataset=dataset, pii_type="email").exists()
    assert ClassificationSuggestion.objects.filter(dataset_field__dataset=dataset).exists()
    return dataset


CANARY_FIELDS = ("pub", "intl", "conf", "restr")


@pytest.fixture
def readers(steward, officer, viewer, superuser, django_user_model):
    cleared_group = Group.objects.create(name="Cleared for confidential and restricted")
    cleared_group.permissions.add(
        *Permission.objects.filter(
            codename__in=[
                clearance_codename(level.pk)
                for level in ClassificationLevel.objects.filter(
                    name__in=["confidential", "restricted"]
                )
            ]
        )
    )
    cleared = make_user(django_user_model, "cleared-officer", COMPLIANCE_OFFICER)
    cleared.groups.add(cleared_group)
    assert {steward.groups.get().name, viewer.groups.get().name} == {DATA_STEWARD, VIEWER}
    return {
        "viewer": viewer,
        "steward": steward,
        "officer": officer,
        "cleared_officer": cleared,
        "superuser": superuser,
    }


def crawl_urls() -> list[str]:
    """Every admin and dashboard GET URL, every row of the record models opened."""
    registry = model_admins()
    urls: list[str] = []
    for route in routes():
        if route.name in ("admin:logout",):
            continue
        model, _admin, view = owner_of(route, registry)
        if model in RECORD_MODELS and view in ("change", "history"):
            for pk in model._default_manager.values_list("pk", flat=True):
                urls.append(reverse(route.name, args=[pk]))
            continue
        if route.name.endswith("_reveal"):
            continue  # opened from the record pages' links (reveal_links), per value
        built = [url for url, _ in build_urls(route, model)]
        urls.extend(built)
        if view == "changelist" and _admin.get_search_fields(None):
            urls.extend(f"{url}?q={SEARCH}" for url in built)
    return urls


REVEAL_LINK = re.compile(r'href="([^"]*/reveal/\?[^"]*)"')


def reveal_links(text: str) -> set[str]:
    """The Reveal pages a record page links to (one per value the reader may reveal)."""
    return {html.unescape(link) for link in REVEAL_LINK.findall(text)}


# Sorting, paging, facet counts and the way back to a list show the rows the list shows.
IGNORED_KEYS = {"o", "p", "all", "_changelist_filters", "_facets", "_popup", "_to_field", "e"}
LINK = re.compile(r'href="([^"#]*\?[^"#]*)"')


def query_links(page_url: str, text: str) -> dict[tuple, str]:
    """The page's links that carry a query into a view of record values: a record list
    filtered (one per list), a batch chosen on the upload page (one per view and set of
    parameters). Reveal and search links are opened on their own; lists of other models
    (patterns, users, alert rules) hold no record value, and their filters would only
    lengthen the crawl."""
    record_lists = {
        f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist"
        for model in RECORD_MODELS
    }
    links: dict[tuple, str] = {}
    for href in LINK.findall(text):
        url = urljoin(page_url, html.unescape(href))
        parts = urlsplit(url)
        if parts.netloc or not parts.path.startswith(("/admin/", "/dashboards/")):
            continue
        try:
            view = resolve(parts.path).view_name
        except Resolver404:
            continue
        keys = tuple(sorted(set(parse_qs(parts.query, keep_blank_values=True)) - IGNORED_KEYS))
        if (
            not keys
            or "q" in keys
            or view.endswith(("_reveal", "_add", "logout"))
            or (view.endswith("_changelist") and view not in record_lists)
        ):
            continue
        # One filtered view per list: its rows are drawn as the list draws them.
        links.setdefault(
            (view, () if view in record_lists else keys), f"{parts.path}?{parts.query}"
        )
    return links


def other_urls() -> list[str]:
    """Every GET URL outside the admin and the dashboards (the API, the probes), its
    parameters filled from every row they can name."""
    fill = {
        "slug": list(Dataset.objects.values_list("slug", flat=True)),
        "batch_id": list(LandingBatch.objects.values_list("pk", flat=True)),
    }
    urls: list[str] = []

    def walk(patterns, prefix: str, namespace: str | None) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(
                    pattern.url_patterns,
                    prefix + str(pattern.pattern),
                    pattern.namespace or namespace,
                )
            elif isinstance(pattern, URLPattern) and namespace not in NAMESPACES:
                path = "/" + prefix + str(pattern.pattern)
                params = re.findall(r"<(?:\w+:)?(\w+)>", path)
                if not params:
                    urls.append(path)
                    continue
                assert len(params) == 1 and params[0] in fill, f"fill {params} of {path}"
                urls.extend(re.sub(r"<[^>]+>", str(value), path) for value in fill[params[0]])

    walk(get_resolver().url_patterns, "", None)
    return urls


def exports() -> list[str]:
    """Every changelist whose admin offers the CSV export."""
    return [
        reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        for model, model_admin in admin.site._registry.items()
        if hasattr(model_admin, "export_selected_as_csv")
    ]


def body(response) -> str:
    if isinstance(response, StreamingHttpResponse):
        return b"".join(response.streaming_content).decode(errors="replace")
    return response.content.decode(errors="replace")


def seen_canaries(text: str) -> set[str]:
    """The canaries in the text, and "md5/sha1/sha256 of <name>" for their fingerprints."""
    lowered = text.lower()
    return {name for name, canary in NAMED.items() if canary.lower() in lowered} | {
        f"md5/sha1/sha256 of {name}" for digest, name in FINGERPRINTS.items() if digest in lowered
    }


def logged(records) -> str:
    """Every log line as a handler writes it: the message and any traceback."""
    formatter = logging.Formatter()
    return "\n".join(formatter.format(record) for record in records)


@pytest.fixture
def everything_logged(caplog):
    caplog.set_level(logging.DEBUG)
    return caplog


def test_each_canary_shows_only_where_the_role_is_cleared(
    client, planted, readers, everything_logged
):
    cache.delete_pattern("atlas:reveals:*")
    urls = crawl_urls()
    assert len(urls) > 150
    assert sum("?q=" in url for url in urls) > 15
    seen_by_role: dict[str, set[str]] = {}
    reveals: set[str] = set()
    followed: dict[tuple, str] = {}
    # The superuser first: the pages it opens link every Reveal page there is, and every
    # filtered or otherwise queried view, which every role then opens too.
    for role, user in sorted(readers.items(), key=lambda item: item[0] != "superuser"):
        client.force_login(user)
        allowed = ROLES[role]
        seen: set[str] = set()
        opened = set()
        while to_open := [url for url in [*urls, *followed.values()] if url not in opened]:
            for url in to_open:
                opened.add(url)
                response = client.get(url)
                assert response.status_code < 500, (role, url)
                text = body(response)
                found = seen_canaries(text)
                assert found <= allowed, (role, url, found - allowed)
                seen |= found
                if role == "superuser" and url in urls:
                    reveals |= reveal_links(text)
                    for key, link in query_links(url, text).items():
                        followed.setdefault(key, link)
        assert any("/ingest/?batch=" in url for url in followed.values())
        # A Reveal page shows no value when opened: without clearance it sends the reader
        # back to the record, with clearance it asks why first.
        assert reveals, "no Reveal link on any record page"
        for url in sorted(reveals):
            response = client.get(url)
            assert response.status_code in (200, 302), (role, url)
            assert not seen_canaries(body(response)), (role, url)
        for changelist in exports():
            response = client.post(
                changelist,
                {
                    "action": "export_selected_as_csv",
                    "select_across": "1",
                    ACTION_CHECKBOX_NAME: ["0"],
                },
            )
            found = seen_canaries(body(response))
            assert found <= allowed, (role, "export", changelist, found - allowed)
            seen |= found
        for metric_id in MetricDefinition.objects.values_list("pk", flat=True):
            response = client.post(
                reverse("admin:navigate_metricdefinition_changelist"),
                {"action": "download_facts_as_csv", ACTION_CHECKBOX_NAME: [metric_id]},
            )
            found = seen_canaries(body(response))
            assert found <= allowed, (role, "facts download", found - allowed)
            seen |= found
        seen_by_role[role] = seen
    # The positive control: each role does see what it is cleared for, somewhere.
    for role, allowed in ROLES.items():
        assert seen_by_role[role] == allowed, (role, seen_by_role[role])
    # And the Reveal pages opened are real: one shows its value once a reason is given.
    client.force_login(readers["cleared_officer"])
    revealed = {
        name
        for url in sorted(reveals)
        if "field=restr" in url
        for name in seen_canaries(body(client.post(url, {"reason": "canary check"})))
    }
    assert "restricted" in revealed
    assert not seen_canaries(logged(everything_logged.records))


def test_the_reporting_views_and_fact_exports_hold_only_what_no_clearance_sees(planted, tmp_path):
    """What BI reads (navigate.reporting, navigate.exports) is what a reader without any
    clearance may see: the public canary, and none other."""
    build_reporting_views()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.views WHERE table_schema = 'reporting'"
        )
        views = [name for (name,) in cursor.fetchall()]
        assert set(views) == {"dataset_orders", "metric_canaries_per_day"}
        read = []
        for view in views:
            cursor.execute(f'SELECT * FROM reporting."{view}"')
            read.append(str(cursor.fetchall()))
    assert seen_canaries(read[0]) | seen_canaries(read[1]) == ROLES["viewer"]
    for fmt in ("csv", "parquet"):
        target = tmp_path / f"facts.{fmt}"
        call_command("export_facts", "canaries-per-day", "--format", fmt, "--output", str(target))
        assert seen_canaries(target.read_bytes().decode(errors="replace")) == ROLES["viewer"]


def test_the_other_urls_answers_carry_no_canary(client, planted, steward, superuser):
    urls = other_urls()
    assert {"/api/datasets", "/api/openapi.json", "/metrics"} <= set(urls)
    answers = []
    for user in (steward, superuser):
        token = ingest.issue_api_token(user=user, name="canary", actor=user)[1]
        headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
        answers += [(url, client.get(url, **headers)) for url in urls if url.startswith("/api/")]
    # The probes and the home answer whoever asks (/statusz: 503 without a worker).
    answers += [(url, client.get(url)) for url in urls if not url.startswith("/api/")]
    for url, response in answers:
        assert response.status_code < 500 or response.status_code == 503, url
        assert not seen_canaries(body(response)), url
    # The answers are real ones: every batch's status, the datasets, the schema.
    ok = {url for url, response in answers if response.status_code == 200}
    assert {"/api/datasets", "/api/openapi.json"} <= ok
    assert {f"/api/batches/{pk}" for pk in LandingBatch.objects.values_list("pk", flat=True)} <= ok


def test_nothing_stored_outside_explore_holds_a_restricted_canary(planted):
    # Chart, quarantine reasons, check results, findings, runs and the audit log: the
    # restricted value is ciphertext and a token, the corrected one too. (A field outside
    # the contract is kept aside as received, and shown at the highest level.)
    stored = " ".join(
        str(list(model.objects.values()))
        for model in (
            ChartRecord,
            QuarantinedRecord,
            CheckResult,
            PiiFinding,
            ClassificationSuggestion,
            Run,
            AuditLog,
        )
    )
    for canary in (CANARY["restricted"], CORRECTED_CANARY):
        assert canary not in stored
    # Findings and suggestions keep masked excerpts only.
    found = str(list(PiiFinding.objects.values())) + str(
        list(ClassificationSuggestion.objects.values())
    )
    assert PII_CANARY not in found
    reasons = str(list(QuarantinedRecord.objects.values_list("reasons", flat=True)))
    for canary in CANARY.values():  # excerpts are protected at their level (public: shown)
        assert (canary in reasons) == (canary == CANARY["public"])
    # Internal and confidential values are kept typed in chart for analysis.
    record = ChartRecord.objects.get(dataset=planted)
    assert record.data["intl"] == CANARY["internal"]
    assert record.data["conf"] == CANARY["confidential"]


def test_no_table_holds_an_unkeyed_fingerprint_of_a_canary(planted):
    # Every row of every model, and the facts' dimension keys, which no page shows.
    stored = io.StringIO()
    for model in apps.get_models():
        stored.write(str(list(model._base_manager.values())))
    assert not {name for name in seen_canaries(stored.getvalue()) if name.startswith("md5")}
