"""Upgrade, downgrade and rehearsal on real Directus projects, on the suite's version axis: the pair is
harness.upgrade_pair() (11.17.4 <-> 12.4.0 by default; 10.13.4 <-> 11.17.4, a Node change 20 -> 22, with
DIRECTUS_OPS_TEST_DIRECTUS=10.13.4), on PostgreSQL and MariaDB: migration sets equal each release's, data intact,
Directus healthy on the Node its version needs; back down in two steps where Directus's own down-migrations
cannot go in one (11.17.4 -> 11.0.1 -> 10.13.4); a failing migration of the target rolls everything back; a
rehearsal leaves production untouched; bad input is refused with nothing changed."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from harness import (ADMIN_EMAIL, DEFAULT_DIRECTUS, DIRECTUS_VERSION, RELEASES, latest_artifact, make_project,
                     upgrade_pair)

from directus_ops import node, releases
from directus_ops.database import DatabaseSettings, open_engine
from directus_ops.errors import ProcedureFailed, VersionError
from directus_ops.project import installed_directus_version, load_project
from directus_ops.directus_api import HEALTHY
from directus_ops.app import TOKEN_ENV

FROM, TO = upgrade_pair()  # the projects of the upgrade and downgrade tests are made on FROM
# A change one of the target's own new migrations makes, made by hand beforehand (schema drift, the way a real
# upgrade fails half-way: "... already exists"); the migrations before it in the run are applied by then.
DRIFT = {
    RELEASES[1]: ("20240909A", "CREATE TABLE directus_comments (id CHAR(36) PRIMARY KEY)"),
    RELEASES[2]: ("20260727A", "ALTER TABLE directus_settings ADD COLUMN default_save_action VARCHAR(255)"),
}
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


def package_files(project_dir: Path) -> dict[str, bytes]:
    return {n: (project_dir / n).read_bytes() for n in ("package.json", "package-lock.json")}


def node_of(version: str) -> str:
    """The Node major directus@version runs on here (the machine's when it fits, else Node from the npm registry)."""
    return node.for_version(version).major


def recorded_node(project_dir: Path) -> str | None:
    record = node.recorded(project_dir)
    return str(record["major"]) if record else None


def health_status(version: str, with_token: bool) -> str:
    """What the health check finds: "ok", or on 12.x without a token only that /server/ping answers
    ("reachable": /server/health answers 403 to anyone but a user)."""
    return "ok" if with_token or int(version.split(".")[0]) < 12 else "reachable"


def left_in_ops_dir(project_dir: Path) -> list[str]:
    """What a finished run left in .directus-ops/: only the Node record (no kept package files, no temporary config)."""
    folder = project_dir / ".directus-ops"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def give_admin_a_token(project_dir: Path, monkeypatch) -> None:
    """A static admin token in DIRECTUS_OPS_TOKEN, so the health check reads the version the server itself runs
    (Directus tells it to admins only; 12.x answers /server/health with 403 without a token)."""
    token = f"ops-{secrets.token_hex(16)}"
    engine = open_engine(load_project(project_dir).database)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE directus_users SET token = :t WHERE email = :e"), {"t": token, "e": ADMIN_EMAIL})
    engine.dispose()
    monkeypatch.setenv(TOKEN_ENV, token)


@pytest.fixture(scope="module")
def from_install(directus_release) -> Path:
    return directus_release(FROM)


@pytest.fixture
def project(tmp_path, from_install, databases, request):
    """A project on FROM with its own node_modules (the procedures change its packages)."""
    engine = getattr(request, "param", "pg")
    made = make_project(tmp_path, from_install, databases.create(engine), own_node_modules=True)
    with made.server():
        pass  # a project that has run once (its first start registers the extensions in the database)
    return made.dir


# The matrix test, except on a line whose pair is the default run's own (11.17.4: 11.17.4 <-> 12.4.0 again).
SAME_PAIR_AS_DEFAULT = DIRECTUS_VERSION != DEFAULT_DIRECTUS and upgrade_pair() == upgrade_pair(DEFAULT_DIRECTUS)


@pytest.mark.parametrize("project", [
    pytest.param("pg", marks=[pytest.mark.matrix, pytest.mark.skipif(
        SAME_PAIR_AS_DEFAULT, reason=f"{FROM} <-> {TO} is the pair the run on {DEFAULT_DIRECTUS} tests")]),
    "mysql"], indirect=True)
def test_upgrade_then_downgrade(project, tmp_path, prefect_server, monkeypatch):
    """FROM -> TO -> FROM. On PostgreSQL with an admin token (the server reports its own version), on MariaDB
    without (12.x's health answers only /server/ping then)."""
    from flows.downgrade import downgrade_directus
    from flows.upgrade import upgrade_directus

    with_token = load_project(project).database.engine == "postgresql"
    if with_token:
        give_admin_a_token(project, monkeypatch)
    settings = add_books(project)
    before = data(settings)
    assert applied(project) == expected(FROM, project)
    newer = sorted(set(expected(TO, project)) - set(expected(FROM, project)), reverse=True)
    # Only a Node change needs consent to fetch Node (10.13.4 -> 11.17.4: 20 -> 22); 11.17.4 already runs on 22.
    install_node = node_of(FROM) != node_of(TO)

    result = upgrade_directus(project_dir=str(project), repo=str(tmp_path / "repo"), to=TO, install_node=install_node,
                              accept_license_change=True)  # into 12.x: the license notice accepted (test_licensing)
    assert installed_directus_version(project) == TO
    assert json.loads((project / "package.json").read_text())["dependencies"]["directus"] == TO  # exact
    assert applied(project) == expected(TO, project)
    assert data(settings) == before
    assert result.health == {"status": health_status(TO, with_token), "version": TO}
    assert recorded_node(project) == node_of(TO)
    assert left_in_ops_dir(project) == ["node.json"]  # kept package files and temporary config cleaned up

    # Back down in one go, or in two steps where the target's own down-migrations cannot do it in one (11.17.4 ->
    # 10.13.4: its down() of 20240806A reads a column reverting 20251012A removed), refused before anything changes.
    steps = [FROM]
    blocked = releases.blocked_revert(project, newer)
    if blocked is not None:
        via = releases.oldest_release_with(blocked.migration.split("-", 1)[0], FROM, TO)
        with pytest.raises(VersionError, match=rf"cannot revert {blocked.migration}.*two steps, `--to {via}`"):
            downgrade_directus(project_dir=str(project), to=FROM, repo=str(tmp_path / "repo"), accept_data_loss=True)
        steps = [via, FROM]
    with pytest.raises(Exception, match="--yes"):  # the target's down-migrations lose data: confirmation needed
        downgrade_directus(project_dir=str(project), to=steps[0], repo=str(tmp_path / "repo"))
    assert installed_directus_version(project) == TO and applied(project) == expected(TO, project)

    reverted = []
    for step in steps:
        result = downgrade_directus(project_dir=str(project), to=step, repo=str(tmp_path / "repo"),
                                    accept_data_loss=True)
        reverted += result.reverted
        assert installed_directus_version(project) == step
        assert applied(project) == expected(step, project)
        assert data(settings) == before
        assert result.health == {"status": health_status(step, with_token), "version": step}
        assert recorded_node(project) == node_of(step)
        assert left_in_ops_dir(project) == ["node.json"]
    assert reverted == newer


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).with_name("directus-ops")), *args], check=False,
                          capture_output=True, text=True, env=env, timeout=1800)


def test_a_failing_migration_of_the_target_rolls_everything_back_on_the_old_versions_node(project, tmp_path,
                                                                                         cli_env):
    """`directus-ops upgrade --install-node` with the machine's Node first on PATH, failing in one of the
    target's own migrations after the ones before it applied: the database, the package files and node_modules
    are put back, and the old version is started again on the Node it ran on (11.17.4 on Node 22, where it once
    was restarted on the machine's Node 20 and failed with ERR_DLOPEN_FAILED), which the project records again."""
    from directus_ops import upgrade

    key, drift = DRIFT[TO]
    settings = add_books(project)
    engine = open_engine(settings)
    with engine.begin() as conn:
        conn.execute(sa.text(drift))
    engine.dispose()
    dump_before, packages_before, applied_before = pg_dump_text(settings), package_files(project), applied(project)
    machine_node = Path(shutil.which("node")).parent  # what `node` is without directus-ops choosing one
    env = {**cli_env, "PATH": f"{machine_node}:{cli_env['PATH']}"}

    result = run_cli("upgrade", str(project), "--repo", str(tmp_path / "repo"), "--to", TO, "--install-node", "--yes",
                     env=env)
    assert result.returncode == ProcedureFailed.exit_code, result.stderr
    assert f"migration {key}" in result.stderr and "already exists" in result.stderr, result.stderr
    assert "database restored" in result.stderr and "FAILED" not in result.stderr, result.stderr

    assert pg_dump_text(settings) == dump_before  # schema, rows and applied migrations exactly as before
    assert applied(project) == applied_before
    assert package_files(project) == packages_before
    assert installed_directus_version(project) == FROM
    assert recorded_node(project) == node_of(FROM)  # the rollback reinstalled on the old version's Node
    assert left_in_ops_dir(project) == ["node.json"]  # no .directus-ops/packages-<id> left
    report = latest_artifact("upgrade-project")  # the run's report names the failure and each rollback step
    assert "failed and was rolled back" in report and key in report and "app started and healthy" in report

    plan = upgrade.plan_upgrade(str(project), TO, install_node=True)  # consistent again: a new attempt is allowed
    old = plan.as_installed()
    assert old.runtime.major == node_of(FROM)
    health = upgrade.check_started(old, FROM, None, None)
    assert health["status"] in HEALTHY and health["version"] == FROM


def test_rehearsal_reports_the_failing_migration_and_leaves_production_alone(project, tmp_path, prefect_server):
    from flows.rehearse import rehearse_upgrade
    from flows.upgrade import upgrade_directus

    settings = add_books(project)
    (project / "migrations" / "20991231A-always-fails.js").write_text(FAILING_MIGRATION)
    dump_before, packages_before = pg_dump_text(settings), package_files(project)
    repo = str(tmp_path / "repo")
    install_node = node_of(FROM) != node_of(TO)
    # The project's own user may not create databases: the operator names one the rehearsal may create and drop.
    scratch = f"postgresql://postgres@127.0.0.1:5432/dops_rehearsal_{secrets.token_hex(4)}"

    with pytest.raises(ProcedureFailed, match=r"rehearsal.*20991231A.*boom.*production was not touched"):
        upgrade_directus(project_dir=str(project), repo=repo, to=TO, rehearse=True, scratch_database_url=scratch,
                         install_node=install_node, accept_license_change=True)
    report = latest_artifact("rehearsal-project")
    assert "FAILED" in report and "20991231A" in report and "not touched" in report

    assert pg_dump_text(settings) == dump_before
    assert package_files(project) == packages_before
    assert installed_directus_version(project) == FROM
    with open_engine(DatabaseSettings.from_url("postgresql://postgres@127.0.0.1:5432/postgres")).connect() as conn:
        leftovers = conn.execute(sa.text("SELECT datname FROM pg_database WHERE datname LIKE '%rehearsal%'")).all()
    assert leftovers == []  # the scratch databases were dropped

    (project / "migrations" / "20991231A-always-fails.js").unlink()
    ok = rehearse_upgrade(project_dir=str(project), repo=repo, to=TO, scratch_database_url=scratch,
                          install_node=install_node)
    assert ok.result == "ok", ok
    assert installed_directus_version(project) == FROM  # still only rehearsed
    assert package_files(project) == packages_before


def test_bad_version_input_is_refused_with_nothing_changed(tmp_path, directus_release, databases, cli_env_no_server):
    """On the oldest line (the same refusals on every line; it runs on the machine's Node 20, so the refusal of a
    target needing Node 22 without --install-node shows too)."""
    oldest, next_line = RELEASES[0], RELEASES[1]
    made = make_project(tmp_path, directus_release(oldest), databases.create("pg"), with_extras=False)
    project, repo = made.dir, tmp_path / "repo"
    packages, migrations = package_files(project), applied(project)
    cases = [
        (["upgrade", str(project), "--repo", str(repo), "--to", "99.0.0"], 14, "not published"),
        (["upgrade", str(project), "--repo", str(repo), "--to", "10.0.0"], 14, "use `directus-ops downgrade"),
        (["upgrade", str(project), "--repo", str(repo), "--to", next_line], 14, "needs Node >=22"),
        (["downgrade", str(project), "--repo", str(repo), "--to", next_line], 14, "newer than the installed"),
        (["upgrade", str(project), "--repo", str(repo), "--to", "eleven"], 14, "not a version"),
    ]
    for args, code, message in cases:
        result = run_cli(*args, env=cli_env_no_server)
        assert result.returncode == code, (args, result.stderr)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    (project / "node_modules").unlink()  # a project whose packages are not installed
    result = run_cli("upgrade", str(project), "--repo", str(repo), "--to", next_line, env=cli_env_no_server)
    assert result.returncode == 2 and "node_modules/directus is missing" in result.stderr, result.stderr
    assert package_files(project) == packages and applied(project) == migrations
    assert not repo.exists()  # no backup was even started


def test_the_target_runs_on_the_node_it_needs_fetched_only_when_allowed(tmp_path, directus_release, databases):
    """From Node 20 (10.13.4) to a target needing 22: refused without install_node, fetched with it. From a
    project already running on Node 22 (11.17.4) to 12.x: that Node, without install_node."""
    from directus_ops import upgrade

    on_node_20 = make_project(tmp_path / "a", directus_release(RELEASES[0]), databases.create("sqlite3"),
                              with_extras=False)
    with pytest.raises(Exception, match="needs Node >=22"):
        upgrade.plan_upgrade(str(on_node_20.dir), RELEASES[1])
    plan = upgrade.plan_upgrade(str(on_node_20.dir), RELEASES[1], install_node=True)
    assert plan.runtime.version.startswith("22.") and plan.current_runtime.major == node.SYSTEM_NODE.major
    assert plan.runtime.env()["PATH"].startswith(str(Path(plan.node_dir) / "bin"))

    on_node_22 = make_project(tmp_path / "b", directus_release(RELEASES[1]), databases.create("sqlite3"),
                              with_extras=False)
    plan = upgrade.plan_upgrade(str(on_node_22.dir), RELEASES[2])
    assert plan.runtime.major == plan.current_runtime.major == "22" and plan.node_dir == plan.current_node_dir


def test_a_downgrade_directus_cannot_finish_is_refused_before_anything_changes(tmp_path, directus_release, databases):
    """11.17.4's down() of 20240806A reads directus_fields.searchable, which reverting 20251012A (earlier in the same
    downgrade to 10.x) drops: refused with the release that can revert it named, nothing changed."""
    from directus_ops import upgrade

    made = make_project(tmp_path, directus_release(RELEASES[1]), databases.create("sqlite3"), with_extras=False)
    migrations = applied(made.dir)
    with pytest.raises(VersionError, match=r"cannot revert 20240806A-permissions-policies\.js on the way to "
                                           r"10\.13\.4: its down\(\) reads directus_fields\.searchable, which "
                                           r"reverting 20251012A-add-field-searchable\.js removes.*`--to 11\.0\.1`"):
        upgrade.plan_downgrade(str(made.dir), RELEASES[0], accept_data_loss=True)
    assert applied(made.dir) == migrations and installed_directus_version(made.dir) == RELEASES[1]
    first_step = upgrade.plan_downgrade(str(made.dir), "11.0.1", accept_data_loss=True)  # allowed: stops above 20240806A
    assert "20240806A" not in first_step.to_revert and "20251012A" in first_step.to_revert


def test_a_database_left_mid_upgrade_is_refused_and_the_way_back_named(tmp_path, from_install, databases):
    from directus_ops import upgrade
    from directus_ops.errors import ProjectError

    made = make_project(tmp_path, from_install, databases.create("sqlite3"), with_extras=False)
    newer = min(set(expected(TO, made.dir)) - set(expected(FROM, made.dir)))
    settings = load_project(made.dir).database
    engine = open_engine(settings)
    with engine.begin() as conn:  # what a killed upgrade to TO leaves: one of its migrations applied
        conn.execute(sa.text("INSERT INTO directus_migrations (version, name) VALUES (:v, 'From a newer release')"),
                     {"v": newer})
    engine.dispose()
    (made.dir / ".directus-ops" / "packages-20261126T101010Z-abcdef").mkdir(parents=True)
    with pytest.raises(ProjectError, match=rf"does not know \({newer}\).*--snapshot 20261126T101010Z-abcdef --replace"):
        upgrade.plan_upgrade(str(made.dir), TO)
