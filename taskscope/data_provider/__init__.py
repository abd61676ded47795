from taskscope.data_provider.files import File

__all__ = ["File"]
