"""Prefect tasks: thin wrappers over the plain functions in ``directus_ops``, one module per thing touched.

Retries are only for transient I/O (``retry.is_transient``); a user error (bad config, missing tool,
non-empty target, damaged snapshot) fails at once with its message.
"""

import logging as _logging
import os as _os



def prefect_environment_defaults() -> None:
    """Prefect settings of every process that runs our flows (CLI, worker, serve), set before Prefect reads its
    settings: at import here, and again in a warm runner's child for the command's own environment."""
    # Our library's loggers join Prefect's handlers (run logs in the UI, console).
    _os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "directus_ops")
    # Lines logged outside any run (a CLI pre-check) stay local instead of warning.
    _os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
    # Prefect must not call home: the server's analytics, and the SDK's telemetry with its "collects anonymous
    # usage data" notice (Prefect 3.9 honours only DO_NOT_TRACK for those).
    _os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    _os.environ.setdefault("DO_NOT_TRACK", "1")
    # Its 20 s default start-up timeout is too short on a busy 2-core host (seen: a backup failing before it began).
    _os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


prefect_environment_defaults()
# Prefect copies its handlers to extra loggers, not a level: without one, INFO lines would be dropped.
_logging.getLogger("directus_ops").setLevel(_logging.INFO)
