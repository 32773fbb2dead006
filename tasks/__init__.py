"""Prefect tasks: thin wrappers over the plain functions in ``directus_ops``, one module per thing touched.

Retries are only for transient I/O (``retry.is_transient``); a user error (bad config, missing tool,
non-empty target, damaged snapshot) fails at once with its message.
"""

import logging as _logging
import os as _os

# Our library's loggers join Prefect's handlers (run logs in the UI, console); set before Prefect loads.
_os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "directus_ops")
# Lines logged outside any run (a CLI pre-check) stay local instead of warning.
_os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
# Prefect copies its handlers to extra loggers, not a level: without one, INFO lines would be dropped.
_logging.getLogger("directus_ops").setLevel(_logging.INFO)
