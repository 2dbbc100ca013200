"""The `recops` command: one module per command group."""
