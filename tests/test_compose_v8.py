"""The v8 migration into a Docker Compose project, database mode, on real Docker: the target's database reached
through its stack's database service, passwords hashed and license limits read by the Directus image's own
packages, the v8 files written into the mounted uploads for the container's user; read back through the API
of the restarted service."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from compose_stacks import ComposeStack
from directus_ops.directus_api import DirectusClient
from harness import ADMIN_EMAIL, ADMIN_PASSWORD, Databases, run_cli
from v8_checks import TEMP_PASSWORD, check_report_counts, check_through_api, extract_v8_uploads, load_v8_sample


class StackTarget:
    """A Compose stack as the v8 checks read a target: its URL, and its Directus (re)started for them."""

    def __init__(self, stack: ComposeStack) -> None:
        self.stack = stack
        self.url = stack.url

    @contextlib.contextmanager
    def server(self) -> Iterator[DirectusClient]:
        self.stack.run("restart", "directus")  # Directus reads the schema it caches when it starts
        self.stack.wait_ready()
        with DirectusClient.login(self.url, ADMIN_EMAIL, ADMIN_PASSWORD) as client:
            yield client


def test_v8_migrate_into_a_compose_project(compose_stack: Callable[..., ComposeStack], databases: Databases,
                                           cli_env: dict[str, str], tmp_path: Path) -> None:
    import json

    v8_url = load_v8_sample(databases)
    uploads = extract_v8_uploads(tmp_path / "v8uploads")
    stack = compose_stack("pg-in-stack")
    done = run_cli({**cli_env, "V8_TEMP_PASSWORD": TEMP_PASSWORD}, "v8", "migrate", "--v8-database", v8_url,
                   "--v8-storage", str(uploads), "--project-dir", str(stack.directory),
                   "--temporary-password-env", "V8_TEMP_PASSWORD", "--accept-license-limits", timeout=900)
    assert done.returncode == 0, done.stderr
    report = json.loads((stack.directory / "v8-migration" / "report.json").read_text())
    check_report_counts(report, v8_url)
    if os.geteuid() == 0:
        assert {p.stat().st_uid for p in stack.uploads.iterdir()} == {1000}  # the container's user's files
    check_through_api(StackTarget(stack), v8_url, uploads)  # type: ignore[arg-type]
