"""Apps (``parsl.app``). ``errors`` is loaded with the package so that ``parsl.app.errors.X``
works after ``import taskscope as parsl``, as it does in Parsl."""

from taskscope.app import errors  # noqa: F401
