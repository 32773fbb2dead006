"""One Prefect flow per procedure; each reads as a short sequence of tasks."""

import tasks as _tasks  # noqa: F401  (Prefect logging settings for our loggers, before Prefect loads)
