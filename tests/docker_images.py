"""Docker images for the tests that run Directus under Docker Compose, built here (Docker Hub is out of reach).

Each is built once and cached: an image whose label ``org.directus-ops.recipe`` holds the recipe's hash (sha256 of
its Dockerfile, entrypoint and the versions of its inputs) is used as it is.

- :func:`base_image`: Debian bookworm from ``debootstrap --variant=minbase`` on the machine's Debian mirror,
  ``docker import``-ed as ``directus-ops-test/bookworm:<hash>``.
- :func:`directus_image`: ``directus/directus:<version>`` in the official image's layout (``WORKDIR /directus``,
  ``node /directus/cli.js``, ``USER node`` uid 1000, port 8055, bootstrap then start), from Node 22
  (directus_ops.node) and the suite's cached npm install of Directus (harness.directus_install). No npm/npx, as
  in the official 12.x image.
- :func:`postgres_image`: ``directus-ops-test/postgres:15`` (Debian's postgresql-15) and :func:`mariadb_image`:
  ``directus-ops-test/mariadb:10.11`` (Debian's mariadb-server) taking the official images' environment
  variables; they listen on 127.0.0.1 only, on ``PGPORT`` (default 5433) / ``MARIADB_PORT`` (default 3307).

Every container runs with ``network_mode: host`` (dockerd has no bridge: scripts/docker-engine); builds run with
``--network host`` so that apt reaches the mirror. Subprocesses use Debian's docker client (/usr/bin first on PATH).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import harness

LABEL = "org.directus-ops.recipe"
SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
NODE_MAJOR = "22"
LOCK = harness.CACHE_ROOT / "docker-images.lock"

# DIRECTUS_OPS_TEST_REBUILD_IMAGES=1: each image is built again (without Docker's layer cache) the first time this
# process asks for it, e.g. to take Debian's newer packages or to time the builds.
REBUILD = os.environ.get("DIRECTUS_OPS_TEST_REBUILD_IMAGES", "") not in ("", "0")
# Seconds each build of this process took, by image reference (0.0 when it was found cached): for reports.
TIMINGS: dict[str, float] = {}


class ImageBuildError(RuntimeError):
    pass


def docker_env() -> dict[str, str]:
    """The environment for docker and docker-compose: Debian's client first on PATH, the legacy builder."""
    return {**os.environ, "PATH": f"/usr/bin:{os.environ.get('PATH', '')}", "DOCKER_BUILDKIT": "0"}


def _sudo() -> list[str]:
    return [] if os.geteuid() == 0 else ["sudo"]


def _run(cmd: list[str], timeout: float = 1800, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, env=docker_env(), capture_output=True, text=True, timeout=timeout, **kwargs)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-40:])
        raise ImageBuildError(f"{' '.join(cmd[:4])} ... failed (exit {result.returncode}):\n{tail}")
    return result


def recipe_hash(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def image_recipe(ref: str) -> str | None:
    """The recipe label of image ``ref``, None when there is no such image."""
    result = subprocess.run(["docker", "image", "inspect", "--format", "{{json .Config.Labels}}", ref],
                            env=docker_env(), capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        return None
    labels = json.loads(result.stdout.strip() or "null") or {}
    return labels.get(LABEL, "")


def _image_id(ref: str) -> str | None:
    result = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", ref], env=docker_env(),
                            capture_output=True, text=True, timeout=60)
    return result.stdout.strip() if result.returncode == 0 else None


def _remove_replaced(ref: str, before: str | None) -> None:
    """Removes the image ``ref`` named before a build, now untagged (Docker refuses while a container or another
    image still uses it: then it stays)."""
    if before and before != _image_id(ref):
        subprocess.run(["docker", "image", "rm", before], env=docker_env(), capture_output=True, timeout=120)


@contextlib.contextmanager
def _build_lock() -> Iterator[None]:
    """One build at a time on the machine (parallel test runs share the images): the others wait, then find it."""
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@contextlib.contextmanager
def _scratch() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="directus-ops-image-"))
    try:
        yield directory
    finally:
        # debootstrap's files belong to root
        subprocess.run([*_sudo(), "rm", "-rf", str(directory)], check=False)


def debian_mirror() -> str:
    """The machine's Debian mirror for bookworm, from /etc/apt/sources.list(.d) (one-line and deb822 files)."""
    sources = Path("/etc/apt")
    files = [sources / "sources.list", *sorted((sources / "sources.list.d").glob("*.list")),
             *sorted((sources / "sources.list.d").glob("*.sources"))]
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, re.M))
                if "deb" in fields.get("Types", "").split() and SUITE in fields.get("Suites", "").split():
                    if fields.get("Enabled", "yes").lower() != "no" and fields.get("URIs"):
                        return fields["URIs"].split()[0].rstrip("/")
        else:
            for line in text.splitlines():
                words = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
                if len(words) >= 3 and words[0] == "deb" and words[2] == SUITE:
                    return words[1].rstrip("/")
    return DEFAULT_MIRROR


def _cached(ref: str, recipe: str) -> bool:
    if REBUILD and ref not in TIMINGS:
        return False
    if image_recipe(ref) == recipe:
        TIMINGS.setdefault(ref, 0.0)
        return True
    return False


# -- the base: Debian bookworm, minbase --------------------------------------------------------------------------
BASE_RECIPE = f"debootstrap --variant=minbase {SUITE}\n"


def base_image() -> str:
    """``directus-ops-test/bookworm:<hash>``: debootstrap's minbase bookworm, imported (about a minute)."""
    recipe = recipe_hash(BASE_RECIPE)
    ref = f"directus-ops-test/bookworm:{recipe}"
    if _cached(ref, recipe):
        return ref
    with _build_lock():
        if _cached(ref, recipe):
            return ref
        before = _image_id(ref)
        start = time.monotonic()
        with _scratch() as scratch:
            rootfs = scratch / "rootfs"
            _run([*_sudo(), "/usr/sbin/debootstrap", "--variant=minbase", SUITE, str(rootfs), debian_mirror()])
            # What debootstrap leaves that an image need not carry.
            for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
                for path in (rootfs / leftover).glob("*"):
                    if path.is_file():
                        path.unlink()
            tar = subprocess.Popen([*_sudo(), "tar", "--numeric-owner", "-C", str(rootfs), "-c", "."],
                                   stdout=subprocess.PIPE)
            try:
                _run(["docker", "import", "--change", f"LABEL {LABEL}={recipe}", "--change", 'CMD ["/bin/bash"]',
                      "-", ref], stdin=tar.stdout)
            finally:
                assert tar.stdout is not None
                tar.stdout.close()
                if tar.wait() != 0:
                    raise ImageBuildError(f"tar of the {SUITE} root file system failed")
        _remove_replaced(ref, before)
        TIMINGS[ref] = time.monotonic() - start
    return ref


def _build(ref: str, recipe: str, files: dict[str, str], extra: tuple[tuple[Path, tuple[str, ...]], ...] = (),
           timeout: float = 1800) -> None:
    """``docker build`` of a context made of ``files`` (name -> text, the Dockerfile among them) and ``extra``
    (a host directory and names in it, which keep their names in the context), streamed as one tar: nothing big
    is copied on disk."""
    start = time.monotonic()
    before = _image_id(ref)
    with _scratch() as scratch:
        for name, text in files.items():
            (scratch / name).write_text(text)
            if name.endswith(".sh"):
                (scratch / name).chmod(0o755)
        cmd = ["tar", "-c", "-C", str(scratch), *files]
        for directory, names in extra:
            cmd += ["-C", str(directory), *names]
        tar = subprocess.Popen(cmd, stdout=subprocess.PIPE)
        try:
            _run(["docker", "build", "--network", "host", *(["--no-cache"] if REBUILD else []),
                  "--label", f"{LABEL}={recipe}", "-t", ref, "-"],
                 stdin=tar.stdout, timeout=timeout)
        finally:
            assert tar.stdout is not None
            tar.stdout.close()
            if tar.wait() != 0:
                raise ImageBuildError(f"tar of the build context of {ref} failed")
    _remove_replaced(ref, before)
    TIMINGS[ref] = time.monotonic() - start


# -- Directus ----------------------------------------------------------------------------------------------------
DIRECTUS_DOCKERFILE = """\
FROM {base}
RUN echo 'node:x:1000:1000::/home/node:/bin/sh' >> /etc/passwd \\
 && echo 'node:x:1000:' >> /etc/group \\
 && mkdir -p /home/node && chown 1000:1000 /home/node
COPY node /usr/local/bin/node
COPY tini-static /usr/bin/tini
WORKDIR /directus
COPY --chown=1000:1000 package.json package-lock.json cli.js /directus/
COPY --chown=1000:1000 node_modules /directus/node_modules
RUN mkdir -p /directus/uploads /directus/extensions /directus/database \\
 && chown 1000:1000 /directus /directus/uploads /directus/extensions /directus/database
USER node
EXPOSE 8055
ENV DB_CLIENT="sqlite3" DB_FILENAME="/directus/database/database.sqlite" NODE_ENV="production" \\
    NPM_CONFIG_UPDATE_NOTIFIER="false"
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["sh", "-c", "node /directus/cli.js bootstrap && exec node /directus/cli.js start"]
"""
# tini (Debian's tini-static, the host's docker-init) is PID 1: Directus's shutdown re-raises SIGTERM, which the
# kernel ignores for PID 1, so without it `docker stop` waits its 10 s (the official image has pm2-runtime there).
TINI = Path("/usr/bin/tini-static")
# The official image's /directus/cli.js is the directus package's own; here the package sits in node_modules.
DIRECTUS_CLI = "import('./node_modules/directus/cli.js');\n"


def _install_node_major(version: str) -> str:
    """The Node major the cached install of directus@version runs on (its record), or would be made with
    (directus_ops.node's choice: the machine's Node when it satisfies engines.node, else that major fetched)."""
    from directus_ops import node
    from directus_ops.releases import required_node

    record = harness.CACHE_ROOT / f"directus-{version}" / node.RECORD
    if record.exists():
        return str(json.loads(record.read_text()).get("major"))
    needed = required_node(version)
    return node.SYSTEM_NODE.major if node.satisfies(node.SYSTEM_NODE, needed) else node.needed_major(needed)


def directus_image(version: str = harness.DIRECTUS_VERSION) -> str:
    """``directus/directus:<version>`` built from the cached npm install of ``version`` (only a release whose install
    runs on Node 22: 11.4 and later). About 40 s once the install is on disk."""
    from directus_ops import node

    major = _install_node_major(version)  # a release for another Node is refused before it is installed
    install = harness.directus_install(version) if major == NODE_MAJOR else None
    if install is None or (major := _install_node_major(version)) != NODE_MAJOR:
        raise ImageBuildError(f"directus@{version} installs with Node {major}, and the test image carries Node "
                              f"{NODE_MAJOR} only: use a release that runs on Node {NODE_MAJOR} (11.4 and later, "
                              "e.g. 11.17.4 or 12.4.0)")
    node_bin = node.fetched(NODE_MAJOR).node_dir / "bin" / "node"  # type: ignore[operator]
    node_version = subprocess.run([str(node_bin), "--version"], capture_output=True, text=True, check=True).stdout
    if not TINI.exists():
        raise ImageBuildError(f"{TINI} is missing: run ./scripts/docker-engine (installs Debian's tini)")
    tini_version = subprocess.run([str(TINI), "--version"], capture_output=True, text=True, check=True).stdout
    lock_hash = hashlib.sha256((install / "package-lock.json").read_bytes()).hexdigest()
    base = base_image()
    dockerfile = DIRECTUS_DOCKERFILE.format(base=base)
    recipe = recipe_hash(dockerfile, DIRECTUS_CLI, version, node_version.strip(), tini_version.strip(), lock_hash)
    ref = f"directus/directus:{version}"
    if _cached(ref, recipe):
        return ref
    with _build_lock():
        if _cached(ref, recipe):
            return ref
        _build(ref, recipe, {"Dockerfile": dockerfile, "cli.js": DIRECTUS_CLI},
               ((node_bin.parent, ("node",)), (TINI.parent, (TINI.name,)),
                (install, ("package.json", "package-lock.json", "node_modules"))))
    return ref


# -- database images ---------------------------------------------------------------------------------------------
# Debian's packages start their service on install and make a cluster/data directory of their own: neither here.
# The data directory is made on the container's first start, in its volume, by the entrypoint.
APT_INSTALL = """\
RUN printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d \\
 && apt-get update -qq \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends {packages} >/dev/null \\
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb {cleanup}
"""

POSTGRES_DOCKERFILE = """\
FROM {base}
RUN mkdir -p /etc/postgresql-common && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf
""" + APT_INSTALL.format(packages="postgresql-15", cleanup="") + """\
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data PGPORT=5433 LANG=C.UTF-8
COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
VOLUME /var/lib/postgresql/data
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["postgres"]
"""

MARIADB_DOCKERFILE = """\
FROM {base}
""" + APT_INSTALL.format(packages="mariadb-server mariadb-client", cleanup="/var/lib/mysql/*") + """\
ENV MARIADB_PORT=3307 LANG=C.UTF-8
COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
VOLUME /var/lib/mysql
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["mariadbd"]
"""

DOCKER_DIR = Path(__file__).parent / "docker"


def _database_image(ref: str, dockerfile_template: str, entrypoint: Path) -> str:
    base = base_image()
    dockerfile = dockerfile_template.format(base=base)
    script = entrypoint.read_text()
    recipe = recipe_hash(dockerfile, script)
    if _cached(ref, recipe):
        return ref
    with _build_lock():
        if not _cached(ref, recipe):
            _build(ref, recipe, {"Dockerfile": dockerfile, "docker-entrypoint.sh": script})
    return ref


def postgres_image() -> str:
    """``directus-ops-test/postgres:15``: Debian's PostgreSQL 15 taking the official image's POSTGRES_USER,
    POSTGRES_PASSWORD, POSTGRES_DB (tests/docker/postgres-entrypoint.sh); on 127.0.0.1:$PGPORT (default 5433)."""
    return _database_image("directus-ops-test/postgres:15", POSTGRES_DOCKERFILE, DOCKER_DIR / "postgres-entrypoint.sh")


def mariadb_image() -> str:
    """``directus-ops-test/mariadb:10.11``: Debian's MariaDB 10.11 taking the official image's MARIADB_DATABASE,
    MARIADB_USER, MARIADB_PASSWORD, MARIADB_ROOT_PASSWORD / MARIADB_ALLOW_EMPTY_ROOT_PASSWORD
    (tests/docker/mariadb-entrypoint.sh); on 127.0.0.1:$MARIADB_PORT (default 3307)."""
    return _database_image("directus-ops-test/mariadb:10.11", MARIADB_DOCKERFILE, DOCKER_DIR / "mariadb-entrypoint.sh")
