"""The pipeline's models in the admin, a module per part (Django's autodiscovery imports
this package, which imports every module that registers a model admin):

- datasets: the datasets' list and a dataset's page (overview, promote, retry), with
  contract_fields (the contract and its classifications), contract_import (a contract
  file) and contract_inference (a contract proposed from a sample file);
- runs: runs, their steps, watermarks and lineage edges (read-only);
- tokens: API tokens;
- admin_alerts (beside this package): alert rules and channels (stewards), alerts and
  notifications (read-only);
- admin_dead_letters (beside this package): tasks set aside after crashing their worker
  too often (read-only).

Shared by several of them: formatting (durations, quality sparklines) and links (to a
dataset's page, to a run's).
"""

from governance.pipeline import admin_alerts, admin_dead_letters
from governance.pipeline.admin import contract_fields, datasets, runs, tokens

__all__ = ["admin_alerts", "admin_dead_letters", "contract_fields", "datasets", "runs", "tokens"]
