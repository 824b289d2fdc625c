"""Tasks: one file each, registered by name in :data:`lmforge.tasks.base.TASKS`."""

from lmforge.tasks import (
    classification,  # noqa: F401  (registers its tasks)
    instruct,  # noqa: F401  (registers its tasks)
    qa,  # noqa: F401  (registers its tasks)
    token,  # noqa: F401  (registers its tasks)
)
from lmforge.tasks.base import TASKS, Task, get_task

__all__ = ["TASKS", "Task", "get_task"]
