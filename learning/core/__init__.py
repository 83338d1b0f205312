"""The learning core: task-axis networks (``[T, B, ...]``), multi-task SAC, per-task replay buffers."""
