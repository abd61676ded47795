"""`parsl.monitoring.queries.pandas` for taskscope: Parsl's DataFrame queries under their
names, plus taskscope's own (defined in `taskscope.store.dataframes`; needs pandas:
``pip install 'taskscope[pandas]'``)."""

from taskscope.store.dataframes import *  # noqa: F403
from taskscope.store.dataframes import __all__  # noqa: F401
