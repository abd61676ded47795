"""Why a run failed and why it was slow: pure functions over a monitoring database.

Each module answers one question from what the database already holds (ours or Parsl's):
`failures` (failure groups), `critical_path`, `stragglers`, `hosts`, `efficiency`,
`forecast` and `diff`; `report` puts them together for the CLI, the dashboard and the JSON
API. `docs/analysis.md` explains the method behind every figure.
"""
