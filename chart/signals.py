"""What chart tells whoever orchestrates it.

A shared promotion (chart.shared_promotion) asks for more workers: sent with `run` and
`helpers` (how many) once the run is running; orchestration sends that many help tasks.
Chart never sends its own tasks (orchestration.dispatch knows the tasks' names).
"""

from django.dispatch import Signal

helpers_wanted = Signal()
