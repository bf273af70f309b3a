"""Chart's models in the admin, a module per model (Django's autodiscovery imports this
package, which imports every module that registers a model admin):

- records: validated records, values as the reader may see them;
- quarantine: quarantine review, with quarantine_filters (the list's filters),
  quarantine_review (a record's page) and quarantine_actions (the list's actions),
  sharing quarantine_common (the dismiss form, run links, re-process reports);
- pii_findings: PII findings.
"""

from chart.admin import pii_findings, quarantine, records

__all__ = ["pii_findings", "quarantine", "records"]
