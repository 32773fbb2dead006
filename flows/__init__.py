"""One Prefect flow per procedure; each reads as a short sequence of tasks."""

import os as _os

# Our library's loggers join Prefect's handlers (run logs in the UI, console), set before Prefect loads.
_os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "directus_ops")
# Lines logged outside any run (a CLI pre-check) stay local instead of warning.
_os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
