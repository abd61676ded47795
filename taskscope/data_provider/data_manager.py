"""``default_staging`` at Parsl's path (``parsl.data_provider.data_manager``).

Parsl's default list also stages FTP, HTTP and zip files; taskscope stages local files only
(docs/compatibility.md), so its default is the one provider that needs no transfer.
"""

from __future__ import annotations

from taskscope.data_provider.file_noop import NoOpFileStaging
from taskscope.data_provider.staging import Staging

default_staging: list[Staging] = [NoOpFileStaging()]

__all__ = ["default_staging"]
