"""Upgrade, downgrade and rehearsal on real Directus projects (10.13.4 <-> 11.1.0) on PostgreSQL and MariaDB:
migration sets equal each release's, data intact, Directus healthy; a failing migration rolls everything back;
a rehearsal leaves production untouched; bad input is refused with nothing changed."""

from __future__ import annotations

import json
import secrets
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

from harness import ADMIN_EMAIL, DIRECTUS_VERSION, make_project

from directus_ops import releases
from directus_ops.database import DatabaseSettings, open_engine
from directus_ops.errors import ProcedureFailed
from directus_ops.project import installed_directus_version, load_project

TARGET = "11.1.0"  # shares 10.13.4's isolated-vm build: a switch is an npm install of ~20 s
FAILING_MIGRATION = """export async function up(knex) {
  await knex.schema.createTable('half_done', (table) => { table.increments('id'); });
  throw new Error('boom: this migration always fails');
}
export async function down(knex) {}
"""


def applied(project_dir: Path) -> list[str]:
    return load_project(project_dir).applied_migrations()


def expected(version: str, project_dir: Path) -> list[str]:
    custom = [p.name.split("-")[0] for p in (project_dir / "migrations").glob("*-*.js")]
    return sorted({m.key for m in releases.release_migrations(version)} | set(custom))


def add_books(project_dir: Path) -> DatabaseSettings:
    """A project table with rows and a reference to a Directus user: what must survive every step."""
    settings = load_project(project_dir).database
    engine = open_engine(settings)
    with engine.begin() as conn:
        admin = conn.execute(sa.text("SELECT id FROM directus_users WHERE email = :e"), {"e": ADMIN_EMAIL}).scalar()
        conn.execute(sa.text("CREATE TABLE books (id INTEGER PRIMARY KEY, title VARCHAR(100), owner CHAR(36))"))
        for number in range(1, 6):
            conn.execute(sa.text("INSERT INTO books VALUES (:i, :t, :o)"), {"i": number, "t": f"Book {number}", "o": str(admin)})
    engine.dispose()
    return settings


def data(settings: DatabaseSettings) -> dict:
    engine = open_engine(settings)
    with engine.connect() as conn:
        books = [tuple(r) for r in conn.execute(sa.text("SELECT id, title, owner FROM books ORDER BY id"))]
        users = [tuple(r) for r in conn.execute(sa.text("SELECT id, email FROM directus_users ORDER BY email"))]
        marker = [tuple(r) for r in conn.execute(sa.text("SELECT id, note FROM ops_marker"))]
    engine.dispose()
    return {"books": books, "users": users, "marker": marker}


def pg_dump_text(settings: DatabaseSettings) -> str:
    """Schema and data as plain SQL (what a user would diff), without pg_dump's per-run random \\restrict key."""
    text = subprocess.run(["pg_dump", "--no-owner", "-h", "127.0.0.1", "-U", settings.user or "postgres",
                           settings.database], capture_output=True, text=True, check=True,
                          env={"PGPASSWORD": settings.password or "", "PATH": "/usr/bin:/bin"}).stdout
    return "\n".join(l for l in text.splitlines() if not l.startswith(("\\restrict", "\\unrestrict")))


def latest_artifact(key: str) -> str:
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async def read() -> str:
        async with get_client() as client:
            found = await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
        return max(found, key=lambda a: a.created).data if found else ""

    return asyncio.run(read())


def package_files(project_dir: Path) -> dict[str, bytes]:
    return {n: (project_dir / n).read_bytes() for n in ("package.json", "package-lock.json")}


@pytest.fixture
def project(tmp_path, directus, databases, request):
    engine = getattr(request, "param", "pg")
    made = make_project(tmp_path, directus, databases.create(engine), own_node_modules=True)
    with made.server():
        pass  # a project that has run once (its first start registers the extensions in the database)
    return made.dir


@pytest.mark.parametrize("project", ["pg", "mysql"], indirect=True)
def test_upgrade_then_downgrade(project, tmp_path, prefect_server):
    from flows.downgrade import downgrade_directus
    from flows.upgrade import upgrade_directus

    settings = add_books(project)
    before = data(settings)
    assert applied(project) == expected(DIRECTUS_VERSION, project)

    result = upgrade_directus(project_dir=str(project), repo=str(tmp_path / "repo"), to=TARGET)
    assert installed_directus_version(project) == TARGET
    assert json.loads((project / "package.json").read_text())["dependencies"]["directus"] == TARGET  # exact
    assert applied(project) == expected(TARGET, project)
    assert data(settings) == before
    assert result["health"] == {"status": "ok", "version": TARGET}
    assert not (project / ".directus-ops").exists()  # kept package files and temporary config cleaned up

    with pytest.raises(Exception, match="--yes"):  # 11.1.0's down-migrations lose data: confirmation needed
        downgrade_directus(project_dir=str(project), to=DIRECTUS_VERSION, repo=str(tmp_path / "repo"))
    assert installed_directus_version(project) == TARGET and applied(project) == expected(TARGET, project)

    result = downgrade_directus(project_dir=str(project), to=DIRECTUS_VERSION, repo=str(tmp_path / "repo"),
                                accept_data_loss=True)
    assert result["reverted"] == ["20240817A", "20240806A"]
    assert installed_directus_version(project) == DIRECTUS_VERSION
    assert applied(project) == expected(DIRECTUS_VERSION, project)
    assert data(settings) == before
    assert result["health"] == {"status": "ok", "version": DIRECTUS_VERSION}


def test_failed_migration_rolls_everything_back(project, tmp_path, prefect_server):
    from flows.upgrade import upgrade_directus

    settings = add_books(project)
    (project / "migrations" / "20991231A-always-fails.js").write_text(FAILING_MIGRATION)
    dump_before, packages_before = pg_dump_text(settings), package_files(project)

    with pytest.raises(ProcedureFailed, match=r"20991231A.*boom") as failure:
        upgrade_directus(project_dir=str(project), repo=str(tmp_path / "repo"), to=TARGET)
    assert "database restored" in str(failure.value)

    assert pg_dump_text(settings) == dump_before  # schema and data exactly as before (no half_done table)
    assert package_files(project) == packages_before
    assert installed_directus_version(project) == DIRECTUS_VERSION
    from directus_ops import upgrade

    plan = upgrade.plan_upgrade(str(project), TARGET)  # consistent again: a new attempt would be allowed
    assert upgrade.check_started(plan, DIRECTUS_VERSION, None, None) == {"status": "ok", "version": DIRECTUS_VERSION}
    report = latest_artifact("upgrade-project")  # the run's report names the failure and the rollback
    assert "failed and was rolled back" in report and "20991231A" in report and "database restored" in report


def test_rehearsal_reports_the_failing_migration_and_leaves_production_alone(project, tmp_path, databases,
                                                                             prefect_server):
    from flows.rehearse import rehearse_upgrade
    from flows.upgrade import upgrade_directus

    settings = add_books(project)
    (project / "migrations" / "20991231A-always-fails.js").write_text(FAILING_MIGRATION)
    dump_before, packages_before = pg_dump_text(settings), package_files(project)
    repo = str(tmp_path / "repo")
    # The project's own user may not create databases: the operator names one the rehearsal may create and drop.
    scratch = f"postgresql://postgres@127.0.0.1:5432/dops_rehearsal_{secrets.token_hex(4)}"

    with pytest.raises(ProcedureFailed, match=r"rehearsal.*20991231A.*production was not touched"):
        upgrade_directus(project_dir=str(project), repo=repo, to=TARGET, rehearse=True, scratch_database_url=scratch)
    result = rehearse_upgrade(project_dir=str(project), repo=repo, to=TARGET, scratch_database_url=scratch)
    assert result["result"] == "failed" and "20991231A" in result["error"] and "boom" in result["error"]

    assert pg_dump_text(settings) == dump_before
    assert package_files(project) == packages_before
    assert installed_directus_version(project) == DIRECTUS_VERSION
    with open_engine(DatabaseSettings.from_url("postgresql://postgres@127.0.0.1:5432/postgres")).connect() as conn:
        leftovers = conn.execute(sa.text("SELECT datname FROM pg_database WHERE datname LIKE '%rehearsal%'")).all()
    assert leftovers == []  # the scratch databases were dropped

    (project / "migrations" / "20991231A-always-fails.js").unlink()
    ok = rehearse_upgrade(project_dir=str(project), repo=repo, to=TARGET, scratch_database_url=scratch)
    assert ok["result"] == "ok", ok
    assert installed_directus_version(project) == DIRECTUS_VERSION  # still only rehearsed


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(__file__).parent.parent / ".venv" / "bin" / "directus-ops"), *args],
                          capture_output=True, text=True, env=env, timeout=300)


def test_bad_version_input_is_refused_with_nothing_changed(tmp_path, directus, databases, cli_env_no_server):
    made = make_project(tmp_path, directus, databases.create("pg"), with_extras=False)
    project, repo = made.dir, tmp_path / "repo"
    packages, migrations = package_files(project), applied(project)
    cases = [
        (["upgrade", str(project), "--repo", str(repo), "--to", "99.0.0"], 14, "not published"),
        (["upgrade", str(project), "--repo", str(repo), "--to", "10.0.0"], 14, "use `directus-ops downgrade"),
        (["upgrade", str(project), "--repo", str(repo), "--to", "11.4.0"], 14, "needs Node >=22"),
        (["downgrade", str(project), "--repo", str(repo), "--to", TARGET], 14, "newer than the installed"),
        (["upgrade", str(project), "--repo", str(repo), "--to", "eleven"], 14, "not a version"),
    ]
    for args, code, message in cases:
        result = run_cli(*args, env=cli_env_no_server)
        assert result.returncode == code, (args, result.stderr)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    (project / "node_modules").unlink()  # a project whose packages are not installed
    result = run_cli("upgrade", str(project), "--repo", str(repo), "--to", TARGET, env=cli_env_no_server)
    assert result.returncode == 2 and "node_modules/directus is missing" in result.stderr, result.stderr
    assert package_files(project) == packages and applied(project) == migrations
    assert not repo.exists()  # no backup was even started


def test_a_target_needing_newer_node_gets_it_from_the_npm_registry_when_allowed(tmp_path, directus, databases):
    from directus_ops import upgrade

    made = make_project(tmp_path, directus, databases.create("sqlite3"), with_extras=False)
    with pytest.raises(Exception, match="needs Node >=22"):
        upgrade.plan_upgrade(str(made.dir), "11.4.0")
    plan = upgrade.plan_upgrade(str(made.dir), "11.4.0", install_node=True)
    assert plan.runtime.version.startswith("22.")
    assert plan.runtime.env()["PATH"].startswith(str(Path(plan.node_dir) / "bin"))


def test_a_database_left_mid_upgrade_is_refused_and_the_way_back_named(tmp_path, directus, databases):
    from directus_ops import upgrade
    from directus_ops.errors import ProjectError

    made = make_project(tmp_path, directus, databases.create("sqlite3"), with_extras=False)
    settings = load_project(made.dir).database
    engine = open_engine(settings)
    with engine.begin() as conn:  # what a killed upgrade to 11.1.0 leaves: a newer migration applied
        conn.execute(sa.text("INSERT INTO directus_migrations (version, name) VALUES ('20240806A', 'Permissions Policies')"))
    engine.dispose()
    (made.dir / ".directus-ops" / "packages-20261126T101010Z-abcdef").mkdir(parents=True)
    with pytest.raises(ProjectError, match=r"does not know \(20240806A\).*--snapshot 20261126T101010Z-abcdef --replace"):
        upgrade.plan_upgrade(str(made.dir), TARGET)
