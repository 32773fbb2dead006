"""The status lines a user sees while `directus-ops demo` installs Directus: made from npm 11's own
`--loglevel info` lines (the format below is what npm printed for directus@10.13.4)."""

from __future__ import annotations

import time

from directus_ops.directus_cli import NpmProgress

NPM_LINES = [
    "npm info using npm@11.19.1",
    "npm http fetch GET 200 https://registry.npmjs.org/directus 412ms (cache miss)",
    "npm http fetch GET 200 https://registry.npmjs.org/@directus%2fapi 95ms (cache miss)",
    "npm warn ERESOLVE overriding peer dependency",
    "npm http fetch GET 200 https://registry.npmjs.org/tar/-/tar-7.4.2.tgz 201ms (cache miss)",
    "npm http fetch GET 200 https://registry.npmjs.org/knex/-/knex-3.1.0.tgz 160ms (cache miss)",
    "npm http cache tar@https://registry.npmjs.org/tar/-/tar-7.4.2.tgz 0ms (cache hit)",
    "npm info run argon2@0.40.3 install node_modules/argon2 node-gyp-build",
    "npm info run isolated-vm@4.7.2 install node_modules/isolated-vm prebuild-install || (node-gyp rebuild --release -j max && node-gyp clean)",
    "npm info run argon2@0.40.3 install { code: 0, signal: null }",
]


def test_a_line_per_phase_and_the_running_script():
    said: list[str] = []
    with NpmProgress(said.append, interval=3600) as progress:
        for line in NPM_LINES[:4]:
            progress.line(line)
        progress.report()
        for line in NPM_LINES[4:]:
            progress.line(line)
        progress.report()
        progress.line("added 1306 packages in 4m")
    assert [s.split(": ", 1)[1] for s in said] == [
        "resolving dependencies (2 package manifests read)",
        "downloading packages",
        "running install scripts (argon2 install)",
        "running install scripts (isolated-vm install)",
        "done (added 1306 packages in 4m)",
    ]
    assert all(s.startswith("npm 0:00: ") for s in said)


def test_time_passing_shows_while_npm_is_silent():
    said: list[str] = []
    with NpmProgress(said.append, interval=0.05) as progress:
        progress.line(NPM_LINES[-2])  # a native build that prints nothing for minutes
        time.sleep(0.3)
    assert sum(s.endswith("running install scripts (isolated-vm install)") for s in said) >= 3


def test_a_failed_install_does_not_say_done():
    said: list[str] = []
    try:
        with NpmProgress(said.append, interval=3600):
            raise RuntimeError("npm failed")
    except RuntimeError:
        pass
    assert not any("done" in s for s in said)
