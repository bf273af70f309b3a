"""What the pipeline tells whoever orchestrates it: a run waits for a worker, a run ended.

Governance records runs; it never sends a layer's task nor starts the next layer
itself (a layer below never imports the one above). The orchestration app, above
every layer, receives these and queues what comes next (orchestration.reactions).
"""

from django.dispatch import Signal

# A queued run that a worker must take up: sent with `run` once it is created (its task
# is sent when the transaction commits).
run_requested = Signal()

# A run ended (succeeded or failed; not one skipped because its dataset was busy): sent
# with `run` by finish_run, inside the transaction that ends it.
run_finished = Signal()
