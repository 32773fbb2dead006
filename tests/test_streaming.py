"""Bounded memory: a file far larger than the memory the process may use goes into the repository and back
out without being held in memory (a 5 GB upload is the same code path, only slower)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import resource, sys
    from pathlib import Path
    from directus_ops.repository import Repository, RepositoryLocation
    from directus_ops.snapshot_backup import backup_location, read_entries
    from directus_ops.storage import StorageLocation

    root = Path(sys.argv[1])
    uploads = root / "uploads"; uploads.mkdir()
    big = uploads / "video.bin"
    with open(big, "wb") as handle:  # sparse: 1 GiB of zeros, costs no disk until copied
        handle.truncate(1024 ** 3)
    with open(big, "r+b") as handle:
        handle.seek(512 * 1024 ** 2); handle.write(b"marker")
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    repo = Repository.open(RepositoryLocation(url=str(root / "repo")), create=True)
    location = StorageLocation(name="local", driver="local", root=str(uploads))
    part = backup_location(location, repo, root, None, workers=2)
    entry = read_entries(part.entries_path)[0]
    with open(root / "restored.bin", "wb") as out:
        repo.copy_object_to(entry, out)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(entry.size, baseline, peak)
""")


def test_a_large_file_streams_through_bounded_memory(tmp_path):
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    size, baseline_kib, peak_kib = map(int, done.stdout.split())
    assert size == 1024 ** 3
    assert (peak_kib - baseline_kib) < 64 * 1024, f"memory grew by {(peak_kib - baseline_kib) // 1024} MiB for a 1 GiB file"
    restored = tmp_path / "restored.bin"
    assert restored.stat().st_size == size
    with open(restored, "rb") as handle:
        handle.seek(512 * 1024 ** 2)
        assert handle.read(6) == b"marker"
