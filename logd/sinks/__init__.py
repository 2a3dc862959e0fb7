"""Where records go: the console, JSON-lines files (and, later, remote shippers)."""
