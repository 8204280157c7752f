"""The MCP server: its tools (tools.py) over stdio (`maas mcp`) and streamable HTTP (http.py)."""
