"""Ways out of the monitoring database: the offline HTML report, Chrome/Perfetto traces,
CSV and Parquet tables, WfCommons WfFormat instances. Each reads the store only."""
