"""Reference files kept in the repository: a real database and schema written by Parsl.

`parsl-sample-small.db` is what Parsl's MonitoringHub wrote for a diamond DAG with retries,
failures, a bash app and memoized tasks; the dashboard, the query layer and the schema checks
are tested against it. Tests that may write copy it first.
"""

from pathlib import Path

FIXTURES = Path(__file__).resolve().with_name("fixtures")
PARSL_FIXTURE_DB = FIXTURES / "parsl-sample-small.db"
PARSL_FIXTURE_SQL = FIXTURES / "parsl-schema.sql"
PARSL_RUN = "85029df9-5f8e-4ab7-810a-f8db9f552f59"  # the fixture's one run
