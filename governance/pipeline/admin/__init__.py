"""The pipeline's models in the admin, a module per part (Django's autodiscovery imports
this package, which imports every module that registers a model admin):

- datasets: the datasets' list and a dataset's page (overview, promote, retry), with
  contract_fields (the contract and its classifications), contract_import (a contract
  file) and contract_inference (a contract proposed from a sample file);
- runs: runs, their steps, watermarks and lineage edges (read-only);
- tokens: API tokens;
- alerts: alert rules and channels (stewards), each person's subscriptions, alerts,
  notifications and heartbeats (read-only);
- dead_letters: tasks set aside after crashing their worker too often (read-only).

Shared by several of them: formatting (durations, quality sparklines) and links (to a
dataset's page, to a run's).
"""

from governance.pipeline.admin import (
    alerts,
    contract_fields,
    datasets,
    dead_letters,
    runs,
    tokens,
)

__all__ = ["alerts", "contract_fields", "datasets", "dead_letters", "runs", "tokens"]
