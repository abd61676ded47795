"""Errors raised by the store when a database cannot be used for writing."""


class StoreError(Exception):
    """The monitoring database cannot be opened or written; the message says why."""


class SchemaMismatchError(StoreError):
    """The file holds a schema this taskscope will not write into (foreign or other version)."""
