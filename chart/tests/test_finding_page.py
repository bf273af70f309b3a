"""A PII finding's page shows where it sits in its value: every PII masked, its own marked."""

from django.urls import reverse

from chart.models import PiiFinding
from chart.services import promote_to_chart
from governance.compliance.models import ClassificationLevel
from governance.compliance.pii.masking import Piece, marked_value
from governance.pipeline.models import DatasetField

NOTE = "card 4111 1111 1111 1111 exp 12/29, mail ann@example.com"


def test_marked_value_masks_every_pii_and_marks_the_finding():
    card = (NOTE.index("4111"), NOTE.index(" exp"))
    mail = (NOTE.index("ann@"), len(NOTE))
    pieces = marked_value(NOTE, card, pii_type="payment_card", other_spans=[mail])
    assert pieces == [
        Piece("card ", "context"),
        Piece("**** **** **** 1111", "finding"),
        Piece(" exp **/**, mail ", "context"),  # digits around are masked, as in excerpts
        Piece("***@*******.***", "pii"),  # another finding: masked entirely
    ]
    hidden = marked_value(NOTE, card, pii_type="payment_card", other_spans=[mail], context=False)
    assert [piece.text for piece in hidden] == ["…", "**** **** **** 1111", "…", "***@*******.***"]


def finding_page(client, customers, land, user):
    land(customers, [{"id": "1", "tier": "gold", "amount": "1.00", "notes": NOTE}])
    promote_to_chart(dataset=customers, triggered_by="test")
    finding = PiiFinding.objects.get(pii_type="payment_card")
    client.force_login(user)
    response = client.get(reverse("admin:chart_piifinding_change", args=[finding.pk]))
    assert response.status_code == 200
    return response.content.decode()


def test_the_finding_page_marks_the_span_among_the_words_of_an_unclassified_field(
    client, customers, land, steward
):
    html = finding_page(client, customers, land, steward)
    assert "<mark>**** **** **** 1111</mark>" in html
    assert "card <mark>" in html and "exp **/**" in html
    assert "4111 1111 1111 1111" not in html and "ann@example.com" not in html


def test_a_reader_not_cleared_for_the_fields_level_sees_no_words_around(
    client, customers, land, viewer
):
    confidential = ClassificationLevel.objects.get(name="confidential")
    DatasetField.objects.filter(dataset=customers, name="notes").update(classification=confidential)
    html = finding_page(client, customers, land, viewer)
    assert "<mark>**** **** **** 1111</mark>" in html
    assert "card " not in html.split('id="finding-in-value"')[1].split("</fieldset>")[0]
    assert "you are not cleared" in html
