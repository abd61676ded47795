"""``FTPInTaskStaging``: ``ftp://`` inputs downloaded inside the task
(``parsl.data_provider.ftp``), as HTTPInTaskStaging does for HTTP."""

from __future__ import annotations

from taskscope.data_provider.http import HTTPInTaskStaging


class FTPInTaskStaging(HTTPInTaskStaging):
    schemes = ("ftp",)


FTPSeparateTaskStaging = FTPInTaskStaging
