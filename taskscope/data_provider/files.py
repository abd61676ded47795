"""``File``: a path or URL an app reads or writes, as in ``parsl.data_provider.files``."""

from __future__ import annotations

import os
from urllib.parse import urlparse


class File:
    """A file named by a local path or a ``file://`` URL.

    Pass Files in ``inputs=[...]`` / ``outputs=[...]``; ``str(f)`` and ``os.fspath(f)`` give the
    local path, so a bash app can format it into its command line.
    """

    url: str

    def __init__(self, url: str | os.PathLike[str]):
        if isinstance(url, File):
            url = url.url
        if not isinstance(url, (str, os.PathLike)):
            raise TypeError(f"File(url) needs a str or path, got {type(url).__name__}")
        self.url = os.fspath(url)
        parsed = urlparse(self.url)
        self.scheme = parsed.scheme or "file"
        self.netloc = parsed.netloc
        self.path = parsed.path if parsed.scheme else self.url
        self.filename = os.path.basename(self.path)
        self.local_path: str | None = None

    @property
    def filepath(self) -> str:
        """Where the file is on this machine."""
        if self.local_path is not None:
            return self.local_path
        if self.scheme != "file":
            raise ValueError(
                f"No local_path set for {self!r}: scheme {self.scheme!r} is not staged by "
                "taskscope; only local paths and file:// URLs are supported"
            )
        return self.path

    def cleancopy(self) -> File:
        return File(self.url)

    def __fspath__(self) -> str:
        return self.filepath

    def __str__(self) -> str:
        return self.filepath

    def __repr__(self) -> str:
        # Parsl's form: every field, so a log line shows how the URL was read.
        fields = [
            f"{type(self).__name__}",
            f"at 0x{id(self):x}",
            f"url={self.url}",
            f"scheme={self.scheme}",
            f"netloc={self.netloc}",
            f"path={self.path}",
            f"filename={self.filename}",
        ]
        if self.local_path is not None:
            fields.append(f"local_path={self.local_path}")
        return f"<{' '.join(fields)}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, File) and other.url == self.url

    def __hash__(self) -> int:
        return hash(self.url)

    def __getstate__(self) -> dict:
        return self.__dict__.copy()
