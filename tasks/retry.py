"""Which failures are worth retrying: connection and I/O faults, not user errors."""

from __future__ import annotations

from typing import Any

from directus_ops.errors import OpsError

# Retry schedule for transient I/O: quick first, then give a restarting server time.
RETRY_DELAYS: list[float] = [2, 10, 30]  # float: Prefect's retry_delay_seconds takes list[float]
_TRANSIENT_MODULES = ("botocore", "aiobotocore", "aiohttp", "s3fs", "urllib3", "psycopg", "pymysql")


def is_transient(task: Any, task_run: Any, state: Any) -> bool:
    """``retry_condition_fn``: retry connection and I/O failures, never a user error that names its fix."""
    try:
        state.result()
    except OpsError as exc:
        return exc.transient
    except (OSError, ConnectionError, TimeoutError):
        return True
    except Exception as exc:  # S3 and driver errors arrive as their libraries' own types
        return type(exc).__module__.split(".")[0] in _TRANSIENT_MODULES
    return False
