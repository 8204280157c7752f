"""Page routes of the web UI, one module per page."""
