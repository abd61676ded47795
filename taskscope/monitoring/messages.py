"""The typed monitoring messages (defined in ``taskscope.store.messages``, re-exported here)."""

from taskscope.store.messages import (  # noqa: F401
    AnyMessage,
    BlockInfo,
    Message,
    NodeInfo,
    ResourceSample,
    TaskInfo,
    TaskStatus,
    TryFailure,
    TryInfo,
    TryRun,
    WorkflowEnd,
    WorkflowStart,
    decode_batch,
    encode_batch,
)
