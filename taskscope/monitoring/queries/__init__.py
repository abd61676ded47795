"""Queries over a monitoring database under the names Parsl users import
(`parsl.monitoring.queries`)."""
