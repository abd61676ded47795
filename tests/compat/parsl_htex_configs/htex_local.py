# Parsl's parsl/tests/configs/htex_local.py (Parsl/parsl @ b8b474c7a, Apache-2.0), with its imports
# swapped from parsl to taskscope as a user would: the test is that it loads and runs.
from taskscope.config import Config
from taskscope.executors import HighThroughputExecutor
from taskscope.launchers import SimpleLauncher
from taskscope.providers import LocalProvider


def fresh_config():
    return Config(
        executors=[
            HighThroughputExecutor(
                label="htex_local",
                loopback_address="::1",
                worker_debug=True,
                cores_per_worker=1,
                encrypted=True,
                provider=LocalProvider(
                    init_blocks=1,
                    max_blocks=1,
                    launcher=SimpleLauncher(),
                ),
            )
        ],
        strategy="none",
    )
