"""ironflow-nodes-fs: an IronFlow plugin distribution."""

__version__ = "0.1.0"
