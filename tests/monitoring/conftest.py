import multiprocessing

import pytest


@pytest.fixture(scope="module")
def spawn_pool():
    """Two spawned worker processes, like HTEX workers: they import tasks fresh."""
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"))
    yield pool
    pool.shutdown(wait=True, cancel_futures=True)
