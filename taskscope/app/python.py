"""Python and join apps."""

from __future__ import annotations

from typing import Any

from taskscope.app.app import AppBase
from taskscope.dataflow.futures import AppFuture


class PythonApp(AppBase):
    def __call__(self, *args: Any, **kwargs: Any) -> AppFuture:
        return self._dfk().submit(self.func, args, executors=self.executors, cache=self.cache,
                                  ignore_for_cache=self.ignore_for_cache, app_kwargs=kwargs,
                                  func_name=self.__name__)


class JoinApp(AppBase):
    def __call__(self, *args: Any, **kwargs: Any) -> AppFuture:
        return self._dfk().submit(self.func, args, cache=self.cache,
                                  ignore_for_cache=self.ignore_for_cache, app_kwargs=kwargs,
                                  join=True, func_name=self.__name__)
