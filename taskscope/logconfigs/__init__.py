"""Log configurations for ``Config(initialize_logging=...)`` at Parsl's path
(``parsl.logconfigs``): ``FileLogging``, ``JSONLogging``, ``NoopLogging``."""

from taskscope.logconfigs.base import LogConfig
from taskscope.logconfigs.file import FileLogging
from taskscope.logconfigs.json import JSONLogging
from taskscope.logconfigs.noop import NoopLogging

__all__ = ["FileLogging", "JSONLogging", "LogConfig", "NoopLogging"]
