"""What explore tells whoever orchestrates it: a stored batch waits for its load.

Explore stores files and loads them; it does not send its own load task (the
orchestration app, above every layer, does: orchestration.reactions).
"""

from django.dispatch import Signal

# Sent with `batch` and `via` (upload, api, retry...) when a batch is stored, or made
# waiting again, and its load is to be queued once the transaction commits.
batch_waiting = Signal()
