"""One Prefect flow per procedure; each reads as a short sequence of tasks."""

import os as _os

# Our library's loggers join Prefect's handlers (run logs in the UI, console), set before Prefect loads.
_os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "directus_ops")

import prefect  # noqa: E402,F401  (logging is configured on import)

from directus_ops.redact import install_log_filter  # noqa: E402

install_log_filter()  # secrets never reach the console or the API's run logs
