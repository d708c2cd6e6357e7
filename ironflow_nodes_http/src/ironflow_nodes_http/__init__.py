"""ironflow-nodes-http: an IronFlow plugin distribution."""

__version__ = "0.1.0"
