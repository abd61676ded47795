"""The monitoring database schema: Parsl's seven tables, exactly, plus taskscope's additions.

Parsl's tables (workflow, task, try, node, block, status, resource) keep Parsl's column
names, types and order so that tools written for Parsl's database work on ours and
`parsl-visualize` opens it. Everything taskscope adds lives in extra tables whose names start
with ``taskscope_``; a Parsl column is never changed.

How the rows are stored is ours to choose: status and resource are WITHOUT ROWID tables
whose primary keys (the same columns as Parsl's, so the same rows are unique) lead with
run_id. Each row
is then stored once, in its key's b-tree, instead of in a rowid table plus an automatic
index of the key (which held every column but try_id again). Databases written by Parsl,
or by taskscope before this layout, keep ordinary tables in Parsl's key order: everything
reads and writes both (docs/architecture.md, decision 22).

Timestamps are text in Parsl's format ``YYYY-MM-DD HH:MM:SS.ffffff``. taskscope writes them
in UTC and says so in ``taskscope_schema.timestamp_convention``; a database without that table
(one written by Parsl) holds local time.
"""

from __future__ import annotations

SCHEMA_VERSION = 1
TIMESTAMP_CONVENTION = "utc"
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f"

# The seven tables with Parsl's columns exactly as its SQLAlchemy models create them
# (tests/fixtures/parsl-schema.sql); a test compares PRAGMA table_info column by column (the
# primary key's columns, not their order).
PARSL_TABLES = """
CREATE TABLE IF NOT EXISTS workflow (
	run_id TEXT NOT NULL,
	workflow_name TEXT,
	workflow_version TEXT,
	time_began DATETIME NOT NULL,
	time_completed DATETIME,
	host TEXT NOT NULL,
	user TEXT NOT NULL,
	rundir TEXT NOT NULL,
	tasks_failed_count INTEGER NOT NULL,
	tasks_completed_count INTEGER NOT NULL,
	PRIMARY KEY (run_id)
);
CREATE TABLE IF NOT EXISTS task (
	task_id INTEGER NOT NULL,
	run_id TEXT NOT NULL,
	task_depends TEXT,
	task_func_name TEXT NOT NULL,
	task_memoize TEXT NOT NULL,
	task_hashsum TEXT,
	task_inputs TEXT,
	task_outputs TEXT,
	task_stdin TEXT,
	task_stdout TEXT,
	task_stderr TEXT,
	task_time_invoked DATETIME,
	task_time_returned DATETIME,
	task_fail_count INTEGER NOT NULL,
	task_fail_cost FLOAT NOT NULL,
	PRIMARY KEY (task_id, run_id)
);
CREATE INDEX IF NOT EXISTS ix_task_task_hashsum ON task (task_hashsum);
CREATE TABLE IF NOT EXISTS try (
	try_id INTEGER NOT NULL,
	task_id INTEGER NOT NULL,
	run_id TEXT NOT NULL,
	block_id TEXT,
	hostname TEXT,
	task_executor TEXT NOT NULL,
	task_try_time_launched DATETIME,
	task_try_time_running DATETIME,
	task_try_time_returned DATETIME,
	task_fail_history TEXT,
	task_joins TEXT,
	PRIMARY KEY (try_id, task_id, run_id)
);
CREATE TABLE IF NOT EXISTS node (
	id INTEGER NOT NULL,
	run_id TEXT NOT NULL,
	hostname TEXT NOT NULL,
	uid TEXT NOT NULL,
	block_id TEXT NOT NULL,
	cpu_count INTEGER NOT NULL,
	total_memory BIGINT NOT NULL,
	active BOOLEAN NOT NULL,
	worker_count INTEGER NOT NULL,
	python_v TEXT NOT NULL,
	timestamp DATETIME NOT NULL,
	last_heartbeat DATETIME NOT NULL,
	PRIMARY KEY (id)
);
CREATE TABLE IF NOT EXISTS block (
	run_id TEXT NOT NULL,
	executor_label TEXT NOT NULL,
	block_id TEXT NOT NULL,
	job_id TEXT,
	timestamp DATETIME NOT NULL,
	status TEXT NOT NULL,
	PRIMARY KEY (run_id, block_id, executor_label, timestamp)
);
CREATE TABLE IF NOT EXISTS status (
	task_id INTEGER NOT NULL,
	task_status_name TEXT NOT NULL,
	timestamp DATETIME NOT NULL,
	run_id TEXT NOT NULL,
	try_id INTEGER NOT NULL,
	PRIMARY KEY (run_id, task_id, task_status_name, timestamp),
	FOREIGN KEY(run_id) REFERENCES workflow (run_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS resource (
	try_id INTEGER NOT NULL,
	task_id INTEGER NOT NULL,
	run_id TEXT NOT NULL,
	timestamp DATETIME NOT NULL,
	resource_monitoring_interval FLOAT,
	psutil_process_pid INTEGER,
	psutil_process_memory_percent FLOAT,
	psutil_process_children_count FLOAT,
	psutil_process_time_user FLOAT,
	psutil_process_time_system FLOAT,
	psutil_process_memory_virtual FLOAT,
	psutil_process_memory_resident FLOAT,
	psutil_process_disk_read FLOAT,
	psutil_process_disk_write FLOAT,
	psutil_process_status TEXT,
	psutil_cpu_num TEXT,
	psutil_process_num_ctx_switches_voluntary FLOAT,
	psutil_process_num_ctx_switches_involuntary FLOAT,
	PRIMARY KEY (run_id, task_id, try_id, timestamp),
	FOREIGN KEY(run_id) REFERENCES workflow (run_id)
) WITHOUT ROWID;
"""

# The worker-occupancy rollups keep the same columns at three bucket widths (1 s, a minute,
# ten minutes; see their comments in TASKSCOPE_TABLES): the columns are stated here once so
# that the three tables cannot drift apart.
_OCCUPANCY_COLUMNS = """(
	run_id TEXT NOT NULL,
	bucket INTEGER NOT NULL,
	worker TEXT NOT NULL,
	app TEXT NOT NULL,
	busy_s FLOAT NOT NULL,
	tries_ended INTEGER NOT NULL,
	PRIMARY KEY (run_id, bucket, worker, app)
) WITHOUT ROWID;"""


def _occupancy_table(name: str) -> str:
    """The DDL of one occupancy rollup table, named `name`."""
    return f"CREATE TABLE IF NOT EXISTS {name} {_OCCUPANCY_COLUMNS}"


# taskscope's additions: extra tables only, so Parsl's tables stay byte-for-byte compatible.
# An f-string, for the occupancy tables: a brace in this DDL would have to be doubled.
TASKSCOPE_TABLES = f"""
CREATE TABLE IF NOT EXISTS taskscope_schema (
	version INTEGER NOT NULL,
	timestamp_convention TEXT NOT NULL,
	created DATETIME NOT NULL
);
-- One row per run: what Parsl's workflow table cannot say.
-- status: running | completed | failed | aborted | lost (lost is derived by readers from
-- a stale last_heartbeat while status is still 'running').
CREATE TABLE IF NOT EXISTS taskscope_run (
	run_id TEXT NOT NULL PRIMARY KEY,
	status TEXT NOT NULL,
	last_heartbeat DATETIME NOT NULL,
	heartbeat_interval FLOAT NOT NULL,
	executors TEXT,
	pid INTEGER,
	python_version TEXT,
	taskscope_version TEXT,
	messages_dropped INTEGER NOT NULL DEFAULT 0
);
-- Why a try failed: one row per failed try.
CREATE TABLE IF NOT EXISTS taskscope_try_failure (
	run_id TEXT NOT NULL,
	task_id INTEGER NOT NULL,
	try_id INTEGER NOT NULL,
	exception_type TEXT NOT NULL,
	message TEXT,
	traceback TEXT,
	exit_code INTEGER,
	PRIMARY KEY (run_id, task_id, try_id)
);
-- Each task's latest state, kept by the writer so the dashboard can count and filter tasks
-- by state without scanning the whole status history (about ten rows per task).
-- duration: the task's invoked -> returned in seconds, computed as readers compute it from
-- the task row (julianday), set when the task ends (NULL before), added after version 1
-- (LATER_COLUMNS adds it to older files). Its index makes a list of tasks sorted
-- by duration a walk, not a sort of every task's julianday() pair.
CREATE TABLE IF NOT EXISTS taskscope_task_state (
	run_id TEXT NOT NULL,
	task_id INTEGER NOT NULL,
	try_id INTEGER NOT NULL,
	state TEXT NOT NULL,
	timestamp DATETIME NOT NULL,
	duration FLOAT,
	PRIMARY KEY (run_id, task_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ix_task_state_run_state ON taskscope_task_state (run_id, state);
CREATE INDEX IF NOT EXISTS ix_task_state_run_duration ON taskscope_task_state (run_id, duration);
-- How many dependency ('depends') and join ('join') edges go from one app's tasks to
-- another's, kept by the writer as tasks arrive so the app-level graph is one small read
-- instead of a pass over every task's dependencies.
CREATE TABLE IF NOT EXISTS taskscope_app_edge (
	run_id TEXT NOT NULL,
	source_app TEXT NOT NULL,
	target_app TEXT NOT NULL,
	kind TEXT NOT NULL,
	count INTEGER NOT NULL,
	PRIMARY KEY (run_id, source_app, target_app, kind)
) WITHOUT ROWID;
-- Each try as its worker saw it (store/worker_rollup.py): which worker ran it and the
-- worker's own start and end, in epoch seconds. Run time and workers busy come from these,
-- not from the kernel's launched/returned times (which add queueing and the trip back).
CREATE TABLE IF NOT EXISTS taskscope_try_run (
	run_id TEXT NOT NULL,
	task_id INTEGER NOT NULL,
	try_id INTEGER NOT NULL,
	worker TEXT,
	app TEXT,
	time_running FLOAT NOT NULL,
	time_ended FLOAT,
	PRIMARY KEY (run_id, task_id, try_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ix_try_run_time ON taskscope_try_run (run_id, time_running);
-- The tries not yet ended on their workers: workers busy now (/metrics, worker_query.busy_now)
-- is a read of these few rows, not of every try of the run.
CREATE INDEX IF NOT EXISTS ix_try_run_open ON taskscope_try_run (run_id) WHERE time_ended IS NULL;
-- Worker seconds busy per (1 s bucket of epoch time, worker, app), from the ended tries,
-- kept by the writer so that workers busy, per-app run time and the task stream of a run
-- of any size are a read of a few thousand rows.
{_occupancy_table("taskscope_occupancy")}
-- The same per minute (bucket = epoch seconds // 60), for views of long runs: a day's run
-- on 256 workers is 22 million worker-seconds but 370,000 worker-minutes.
{_occupancy_table("taskscope_occupancy_minute")}
-- The same per ten minutes (bucket = epoch seconds // 600), for the task stream of a whole
-- long run: 256 workers over three hours are 180,000 worker-minutes to group, 18,000 here.
{_occupancy_table("taskscope_occupancy_10min")}
-- How many tasks of each app entered each state in each 1 s bucket of epoch time, kept by
-- the writer (store/state_flow.py): the run's state counts, per-app counts and the whole-run
-- timeline (tasks in each state over time) are sums over these rows at any size.
CREATE TABLE IF NOT EXISTS taskscope_state_flow (
	run_id TEXT NOT NULL,
	bucket INTEGER NOT NULL,
	app TEXT NOT NULL,
	state TEXT NOT NULL,
	entered INTEGER NOT NULL,
	PRIMARY KEY (run_id, bucket, app, state)
) WITHOUT ROWID;
-- The same per minute, for long runs, and per run (no time): the run's task and try counts,
-- its per-app final-state counts and run time, in a few rows. A retry's pending and launched
-- are counted as 'pending_retry' and 'relaunched', so that 'pending' counts tasks.
CREATE TABLE IF NOT EXISTS taskscope_state_flow_minute (
	run_id TEXT NOT NULL,
	bucket INTEGER NOT NULL,
	app TEXT NOT NULL,
	state TEXT NOT NULL,
	entered INTEGER NOT NULL,
	PRIMARY KEY (run_id, bucket, app, state)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS taskscope_app_total (
	run_id TEXT NOT NULL,
	app TEXT NOT NULL,
	state TEXT NOT NULL,
	entered INTEGER NOT NULL,
	PRIMARY KEY (run_id, app, state)
) WITHOUT ROWID;
-- Per app, the ended tries and their summed run time on the workers' clocks.
CREATE TABLE IF NOT EXISTS taskscope_app_run_total (
	run_id TEXT NOT NULL,
	app TEXT NOT NULL,
	busy_s FLOAT NOT NULL,
	tries_ended INTEGER NOT NULL,
	PRIMARY KEY (run_id, app)
) WITHOUT ROWID;
-- Who depends on (or joins) whom, from the dependent's side: a task page's dependents are
-- a lookup instead of a text search through every later task's task_depends.
CREATE TABLE IF NOT EXISTS taskscope_dependent (
	run_id TEXT NOT NULL,
	task_id INTEGER NOT NULL,
	dependent_id INTEGER NOT NULL,
	PRIMARY KEY (run_id, task_id, dependent_id)
) WITHOUT ROWID;
-- What each task asked for: its parsl_resource_specification (JSON text, keys sorted) and the
-- walltime= of a python or bash app, in seconds. Only tasks that asked for either have a row.
-- The analysis compares them with what the task's tries used (store/analysis/requests.py).
CREATE TABLE IF NOT EXISTS taskscope_task_request (
	run_id TEXT NOT NULL,
	task_id INTEGER NOT NULL,
	resource_specification TEXT,
	walltime FLOAT,
	PRIMARY KEY (run_id, task_id)
) WITHOUT ROWID;
-- What else a run's pages need that Parsl's workflow row cannot say: the directory the
-- workflow was launched from (relative stdout/stderr paths resolve against it) and the
-- longest try so far (how far back a time window's bars may start).
CREATE TABLE IF NOT EXISTS taskscope_run_extra (
	run_id TEXT NOT NULL PRIMARY KEY,
	launch_dir TEXT,
	longest_try_s FLOAT NOT NULL DEFAULT 0
);
"""

# Columns added to taskscope's tables after their version-1 DDL, as (table, column, type):
# the writer adds them (ALTER TABLE, an O(1) change) to a file whose table predates them,
# before checking the schema and creating the indexes that use them. The runs already in
# such a file keep NULL there; readers check a run's rows before relying on a column.
LATER_COLUMNS = (("taskscope_task_state", "duration", "FLOAT"),)

# Indexes for the dashboard's lookups: (name, table, columns). An index is created only where
# no index of its table (the primary key's included) already begins with its columns
# (database.create_indexes), so an index that a table's key order makes redundant exists only
# in databases whose tables keep Parsl's key order. The primary keys cover lookups by run_id
# on workflow and by (task_id, run_id) on task and status: a status index on (run_id,
# task_id, timestamp) was dropped because it cost the writer about a third of its time
# (status gets five rows per task) and answers nothing the primary key does not.
INDEXES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("ix_task_run_func", "task", ("run_id", "task_func_name")),
    ("ix_try_run_task", "try", ("run_id", "task_id")),
    ("ix_status_run_time", "status", ("run_id", "timestamp")),
    ("ix_resource_run_task", "resource", ("run_id", "task_id", "try_id", "timestamp")),
    ("ix_resource_run_time", "resource", ("run_id", "timestamp")),
    ("ix_node_run", "node", ("run_id", "timestamp")),
    ("ix_block_run", "block", ("run_id", "timestamp")),
)

PARSL_TABLE_NAMES = ("workflow", "task", "try", "node", "block", "status", "resource")
