"""dbmcp: a remote MCP server that puts databases in front of AI assistants, read-only and scoped."""

__version__ = "0.1.0"
