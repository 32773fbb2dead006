"""Serve the flows from one process, no work pool needed: the simplest way to run nightly backups on the
host that runs Directus.

    DIRECTUS_PROJECT_DIR=/srv/directus DIRECTUS_OPS_REPO=/backups/directus python deployments/serve.py

Schedules pause while this process is stopped.
"""

from __future__ import annotations

import os

from prefect import serve

from flows.backup import backup
from flows.delete import delete_project
from flows.downgrade import downgrade_directus
from flows.move import move_project
from flows.rehearse import rehearse_upgrade
from flows.restore import restore
from flows.upgrade import upgrade_directus
from flows.v8_migrate import v8_migrate


def main() -> None:
    project_dir = os.environ["DIRECTUS_PROJECT_DIR"]
    repo = os.environ["DIRECTUS_OPS_REPO"]
    cron = os.environ.get("DIRECTUS_OPS_BACKUP_CRON", "17 2 * * *")
    serve(
        backup.to_deployment(name="backup", cron=cron, parameters={"project_dir": project_dir, "repo": repo},
                             tags=["directus", "backup"]),
        restore.to_deployment(name="restore", parameters={"repo": repo, "project_dir": project_dir},
                              tags=["directus", "restore"]),
        move_project.to_deployment(name="move", parameters={"project_dir": project_dir, "repo": repo},
                                   tags=["directus", "move"]),
        upgrade_directus.to_deployment(name="upgrade", parameters={"project_dir": project_dir, "repo": repo,
                                                                   "rehearse": True}, tags=["directus", "upgrade"]),
        rehearse_upgrade.to_deployment(name="rehearse-upgrade", parameters={"project_dir": project_dir, "repo": repo},
                                       tags=["directus", "upgrade"]),
        downgrade_directus.to_deployment(name="downgrade", parameters={"project_dir": project_dir, "repo": repo},
                                         tags=["directus", "downgrade"]),
        # On demand only; a run without confirm (the project's name) is refused, and dry_run shows the plan.
        delete_project.to_deployment(name="delete", parameters={"project_dir": project_dir, "repo": repo,
                                                                "dry_run": True}, tags=["directus", "delete"]),
        # Run on demand with v8_database_url (no password: DIRECTUS_OPS_DATABASE_PASSWORD) and v8_storage.
        v8_migrate.to_deployment(name="v8-migrate", parameters={"project_dir": project_dir}, tags=["directus", "v8"]),
    )


if __name__ == "__main__":
    main()
