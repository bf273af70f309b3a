"""Values as one reader may see them, field by field through a dataset's contract.

`governance.pipeline.selectors.dataset_shields(clearance)` gives the shield of each
dataset for a reader (the contract's levels read once per dataset).

Used wherever a record's values leave the database for a person or a file: admin
pages, CSV exports, the API, the dashboards. The rules (DESIGN.md, Sensitive values):

- a contract field is shown at its level: in clear to a reader cleared for it, masked
  by the level's rule otherwise; a level that requires encryption is never shown in
  clear (its values are revealed one at a time, governance.compliance.reveal);
- an unclassified contract field is shown, with any PII found in it masked unless the
  reader is cleared for the level that PII's pattern calls for;
- a field that is not in the contract is treated at the highest level until classified;
- a line that could not be parsed has no fields: it is treated at the dataset's highest
  level (the highest level overall when none of its fields is classified).
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from governance.compliance.clearance import Clearance
from governance.compliance.models import PiiPattern
from governance.compliance.pii.masking import mask_matches
from governance.compliance.pii.scanner import load_patterns, scan_value

PROTECTED_TEXT = "[protected]"


@dataclass(frozen=True)
class ShownValue:
    """One field's value as a reader sees it, with what a page needs to say about it."""

    name: str
    value: Any  # as shown: the value, or its masked form
    level_name: str | None  # None: unclassified, or not in the contract (see in_contract)
    in_contract: bool
    masked: bool  # the reader sees a masked form
    revealable: bool  # encrypted level and the reader is cleared: a Reveal button


class DatasetShield:
    """One reader's view of one dataset's values (build once per page or export)."""

    def __init__(
        self, clearance: Clearance, *, dataset_id: int, field_levels: Mapping[str, int | None]
    ):
        self.clearance = clearance
        self.dataset_id = dataset_id
        self.field_levels = dict(field_levels)
        self.highest = self._dataset_highest()
        self._expected: dict[int | None, int | None] | None = None
        self._patterns = None  # loaded on first use, once per shield (one query)

    def _dataset_highest(self) -> int | None:
        classified = [pk for pk in self.field_levels.values() if pk is not None]
        if classified:
            return self.clearance.highest_of(classified)
        return self.clearance.highest.id if self.clearance.highest else None

    def level_of(self, name: str) -> int | None:
        """The level a field's values are treated at (outside the contract: the highest)."""
        if name in self.field_levels:
            return self.field_levels[name]
        return self.clearance.highest.id if self.clearance.highest else None

    # --- One value ---------------------------------------------------------------------

    def field(self, name: str, value: Any) -> ShownValue:
        in_contract = name in self.field_levels
        level_id = self.level_of(name)
        level = self.clearance.level(level_id)
        if level is None:  # an unclassified contract field
            shown = self._pii_masked(value)
            return ShownValue(name, shown, None, True, shown != value, False)
        sees = self.clearance.sees(level_id)
        return ShownValue(
            name,
            value if sees else level.masked(value),
            level.name,
            in_contract,
            not sees and value is not None,
            level.requires_encryption
            and self.clearance.is_cleared_for(level_id)
            and value is not None,
        )

    def value(self, name: str, value: Any) -> Any:
        return self.field(name, value).value

    def record_text(self, text: str | None) -> str | None:
        """A line as received (raw text), at the dataset's highest level."""
        if text is None or text == "":
            return text
        if self.clearance.sees(self.highest):
            return text
        level = self.clearance.level(self.highest)
        return level.masked(text) if level is not None else text

    def line(self, text: str | None, *, parsed: bool) -> str | None:
        """A line as received: a parsed one whole only if the reader sees every field
        in clear (its values are shown one by one otherwise), an unparsed one at the
        dataset's highest level."""
        if not parsed:
            return self.record_text(text)
        if not text or self.sees_everything():
            return text
        return f"{PROTECTED_TEXT} This line holds values you are not cleared for."

    # --- A whole payload -----------------------------------------------------------------

    def payload(self, payload: Any) -> Any:
        """A payload (dict of fields) with every value as this reader sees it."""
        if isinstance(payload, Mapping):
            return {str(name): self.value(str(name), value) for name, value in payload.items()}
        if payload is None:
            return None
        # Not an object of named fields: the whole of it at the dataset's highest level.
        return payload if self.clearance.sees(self.highest) else PROTECTED_TEXT

    def fields(self, payload: Any, names: Iterable[str] = ()) -> list[ShownValue]:
        """Each field of a payload (contract fields first, in `names` order)."""
        payload = payload if isinstance(payload, Mapping) else {}
        ordered = [name for name in names if name in payload]
        ordered += [name for name in payload if name not in ordered]
        return [self.field(name, payload[name]) for name in ordered]

    def sees_everything(self) -> bool:
        """Reads every field of this dataset in clear (so raw text can be shown whole)."""
        return self.clearance.sees(self.highest) and all(
            self.clearance.sees(pk) for pk in self.field_levels.values()
        )

    # --- PII in unclassified text ---------------------------------------------------------

    def _pii_masked(self, value: Any) -> Any:
        if not isinstance(value, str) or len(value) < 2:
            return value
        if self._patterns is None:
            self._patterns = load_patterns()
        matches = scan_value(value, self._patterns)
        hidden = [m for m in matches if not self.clearance.sees(self._expected_level(m))]
        return mask_matches(value, hidden) if hidden else value

    def _expected_level(self, match) -> int | None:
        """The level a PII finding calls for: its pattern's, else the highest."""
        if self._expected is None:
            self._expected = dict(PiiPattern.objects.values_list("pk", "default_classification_id"))
        level_id = self._expected.get(match.pattern_id)
        if level_id is None and self.clearance.highest is not None:
            return self.clearance.highest.id
        return level_id
