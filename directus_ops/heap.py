"""The process's long-lived objects kept out of the garbage collector's full passes.

A process that runs our flows has imported Prefect, pydantic, SQLAlchemy and their dependencies: 150,000 to
300,000 objects that live as long as it does. An incremental backup of 10,000 files allocates enough objects
(its manifests' entries, the listing) to trigger a full collection, which walks every one of them: 0.08–0.2 s,
a third of such a backup. ``gc.freeze()`` moves the objects alive now to a generation the collector does not
visit; later collections walk only what was made since. Done once per process (the objects frozen are the
imports, which are never garbage), and in the warm runner before it forks: a child's collections then also
leave the runner's pages unwritten (no copy-on-write of its whole heap).
"""

from __future__ import annotations

import gc

_frozen = False


def freeze_long_lived() -> None:
    """Freeze what is alive now, the first time this process calls it; later calls do nothing."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.freeze()
