"""In a real browser: a compliance officer tries an invalid PII regex and sees why, previews
a pattern change (gained and lost) and saves it, and accepts a classification suggestion."""

import pytest
from playwright.sync_api import expect

from chart.services import promote_to_chart
from governance.compliance.models import (
    AuditAction,
    AuditLog,
    ClassificationSuggestion,
    PiiPattern,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SSN = "US Social Security number"
BARE_SSN = r"\b\d{9}\b"


@pytest.fixture
def promoted(customers, land):
    land(
        customers,
        [
            {"id": "1", "tier": "gold", "ssn": "123-45-6789", "notes": "card 4111 1111 1111 1111"},
            {"id": "2", "tier": "gold", "ssn": "234-56-7890", "notes": "ssn 345678901"},
            {"id": "3", "tier": "bronze", "notes": "card 4111 1111 1111 1111, 456-78-9012"},
            {"id": "4", "tier": "silver", "notes": "card 4111 1111 1111 1111"},
        ],
    )
    promote_to_chart(dataset=customers, triggered_by="test")
    return customers


def test_an_officer_tries_a_bad_regex_then_previews_and_saves_a_change(
    live_server, browser_login, screenshot, officer, promoted
):
    pattern = PiiPattern.objects.get(name=SSN)
    page = browser_login(officer)
    page.goto(f"{live_server.url}/admin/compliance/piipattern/{pattern.pk}/change/")

    page.fill("#id_regex", "[0-9")
    page.fill("#try-pattern-sample", "ssn 123-45-6789")
    page.click("#try-pattern-button")
    expect(page.locator("#try-pattern-result .errornote")).to_contain_text("does not compile")
    page.click("#pattern-impact-button")
    impact = page.locator("#pattern-impact-result")
    expect(impact.locator(".errornote")).to_contain_text("Regex: The regex does not compile")

    page.fill("#id_regex", BARE_SSN)
    page.click("#pattern-impact-button")
    expect(impact.locator(".impact-summary")).to_contain_text("3 saved → 1 edited")
    expect(impact.locator(".impact-summary .gained")).to_have_text("1 gained")
    expect(impact.locator(".impact-summary .lost")).to_have_text("3 lost")
    rows = impact.locator("tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.filter(has_text="ssn").first).to_contain_text("-2")
    assert "6789" not in impact.inner_text()  # masked excerpts only
    screenshot("compliance-pattern-impact")

    page.click("input[name=_save]")
    expect(page.locator(".messagelist .success")).to_be_visible()
    pattern.refresh_from_db()
    assert pattern.regex == BARE_SSN
    change = AuditLog.objects.get(
        object_type="compliance.piipattern", actor="officer", action=AuditAction.UPDATE
    )
    assert change.after == {"regex": BARE_SSN, "updated_at": change.after["updated_at"]}


def test_an_officer_accepts_a_classification_suggestion(
    live_server, browser_login, screenshot, officer, promoted
):
    suggestion = ClassificationSuggestion.objects.get(dataset_field__name="notes")
    page = browser_login(officer)
    page.goto(f"{live_server.url}/admin/compliance/classificationsuggestion/")
    page.click(f"a[href$='/classificationsuggestion/{suggestion.pk}/change/']")
    expect(page.locator(".field-pii_type_list")).to_contain_text("payment_card")
    expect(page.locator(".field-hit_ratio_shown")).to_contain_text("%")
    screenshot("compliance-suggestion")

    page.click("#accept-suggestion")
    expect(page.locator(".messagelist .success")).to_contain_text("now classified restricted")
    expect(page.locator("#suggestion-decided")).to_contain_text("Accepted by officer")
    suggestion.refresh_from_db()
    assert suggestion.status == "accepted"
    assert suggestion.dataset_field.classification.name == "restricted"
