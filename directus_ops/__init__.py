"""directus-ops: every procedure of a self-hosted Directus project's life, as Prefect flows.

The modules in this package are plain Python (no Prefect): the nouns (``Project``, ``Repository``,
``Manifest``), the database and storage layers, and the one subprocess helper. ``tasks/`` wraps them as
Prefect tasks and ``flows/`` composes those into procedures.
"""

__version__ = "0.1.0"

from . import redact as _redact

_redact.install()  # no secret reaches any log record, from any logger
