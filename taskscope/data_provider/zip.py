"""``ZipFileStaging``: Files inside zip archives (``parsl.data_provider.zip``).

``File("zip:/tmp/out/results.zip/inside/a.txt")`` names the member ``inside/a.txt`` of the
archive ``/tmp/out/results.zip``. As an output, the task writes a local file (in the
executor's ``working_dir``, or the run's ``staging`` directory) which a staging task then
adds to the archive; as an input, a staging task extracts the member before the task runs.
Writers of one archive take turns on an exclusive lock (``<archive>.lock``, fcntl), as
Parsl's filelock does.
"""

from __future__ import annotations

import fcntl
import os
import zipfile
from concurrent.futures import Future
from typing import Any

from taskscope.data_provider.files import File
from taskscope.data_provider.staging import Staging
from taskscope.errors import TaskscopeError


class ZipAuthorityError(TaskscopeError):
    def __init__(self, file: File) -> None:
        super().__init__(file)
        self.file = file

    def __str__(self) -> str:
        return (
            "ZipFileStaging cannot stage Files with an authority (netloc) section "
            f"({self.file.netloc}), for {self.file.url}"
        )


def zip_path_split(path: str) -> tuple[str, str]:
    """``/a/b.zip/c/d.txt`` -> (``/a/b.zip``, ``c/d.txt``)."""
    index = path.find(".zip/")
    if index < 0:
        raise ValueError(f"zip: path {path!r} names no member inside a .zip archive")
    return path[: index + 4], path[index + 5 :]


class _ArchiveLock:
    def __init__(self, archive: str) -> None:
        self.path = archive + ".lock"

    def __enter__(self) -> _ArchiveLock:  # noqa: PYI034
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)


def _zip_stage_out(
    archive: str,
    member: str,
    parent_fut: Any = None,
    inputs: Any = (),
    _parsl_staging_inhibit: bool = True,
) -> None:
    local = inputs[0]
    folder = os.path.dirname(archive)
    if folder:
        os.makedirs(folder, exist_ok=True)
    with _ArchiveLock(archive), zipfile.ZipFile(archive, "a", zipfile.ZIP_DEFLATED) as z:
        z.write(local, arcname=member)
    os.remove(local)


def _zip_stage_in(
    archive: str, member: str, outputs: Any = (), _parsl_staging_inhibit: bool = True
) -> None:
    with _ArchiveLock(archive), zipfile.ZipFile(archive, "r") as z:
        content = z.read(member)
    target = os.fspath(outputs[0])
    os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
    with open(target, "wb") as f:
        f.write(content)


class ZipFileStaging(Staging):
    def is_zip_url(self, file: File) -> bool:
        if file.scheme != "zip":
            return False
        if file.netloc:
            raise ZipAuthorityError(file)
        return True

    def can_stage_out(self, file: File) -> bool:
        return self.is_zip_url(file)

    def can_stage_in(self, file: File) -> bool:
        return self.is_zip_url(file)

    def stage_out(self, dm: Any, executor: str, file: File, app_fu: Future) -> Future:
        archive, member = zip_path_split(file.path)
        file.local_path = os.path.join(dm.working_dir(executor), member)
        os.makedirs(os.path.dirname(file.local_path), exist_ok=True)
        # After the app (its future is a dependency), the member goes into the archive.
        return dm.internal_task(_zip_stage_out, archive, member, parent_fut=app_fu, inputs=[file])

    def stage_in(self, dm: Any, executor: str, file: File, parent_fut: Any) -> Any:
        archive, member = zip_path_split(file.path)
        file.local_path = os.path.join(dm.working_dir(executor), member)
        extracted = File(file.url)
        extracted.local_path = file.local_path
        deps = {"parent_fut": parent_fut} if parent_fut is not None else {}
        fut = dm.internal_task(
            _zip_stage_in_with_parent, archive, member, outputs=[extracted], **deps
        )
        return fut.outputs[0]


def _zip_stage_in_with_parent(
    archive: str,
    member: str,
    parent_fut: Any = None,
    outputs: Any = (),
    _parsl_staging_inhibit: bool = True,
) -> None:
    _zip_stage_in(archive, member, outputs=outputs)
