"""Parsl's ``parsl.app.errors`` names, for ported ``except`` clauses."""

from taskscope.errors import (  # noqa: F401
    AppBadFormatting,
    AppException,
    AppTimeout,
    BadStdStreamFile,
    BashAppNoReturn,
    BashExitFailure,
    MissingOutputs,
    RemoteExceptionWrapper,
)
