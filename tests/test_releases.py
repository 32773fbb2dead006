"""Downgrade warnings derived from the installed packages' own down-migrations (no hand list that ages): what
reverting the migrations of the newer supported lines loses, read from the real @directus/api files."""

from __future__ import annotations

from directus_ops import releases
from harness import RELEASES


def test_down_warnings_name_every_dropped_table_and_column_of_the_newer_releases(directus_release):
    newest = releases.installed_migrations(directus_release(RELEASES[-1]))
    oldest = {m.key for m in releases.installed_migrations(directus_release(RELEASES[0]))}
    reverted = [m for m in newest if m.key not in oldest]
    lines = releases.down_warnings(reverted)
    warnings = "\n".join(lines)
    for migration in reverted:  # each down() that drops something is named, with what it drops
        if migration.key in releases.LOSSY_DOWNS:  # described by hand: checked below
            continue
        line = next((w for w in lines if w.startswith(f"{migration.name}: ")), "")
        for table in releases.re.findall(r"dropTable\(['\"]([^'\"]+)", migration.down_source):
            assert table in line, (migration.name, table)
        for column in releases._dropped_columns(migration.down_source):
            assert column in line, (migration.name, column)
    # Pinned facts of 12.x: the license key, the deployments and the OAuth tables are lost by going below them.
    assert "directus_settings.license_key" in warnings
    assert "directus_deployments" in warnings and "directus_oauth_clients" in warnings
    assert "20240924B-populate-versioning-deltas.js: its down() does nothing" in warnings
    assert "moves comments back into directus_activity" in warnings


def test_down_body_ends_at_the_function_in_a_bundled_file():
    source = 'async function down(knex) {\n\tif (x) { await knex.schema.dropTable("t"); }\n}\n//#endregion\nexport { down, up };\n'
    assert releases._down_body(source).endswith('dropTable("t"); }\n}')
    assert releases._dropped_columns('alterTable("a", (t) => { t.dropColumns("x", "y"); }); alterTable("b", (t) => '
                                     '{ t.dropColumn("z"); })') == ["a.x", "a.y", "b.z"]
