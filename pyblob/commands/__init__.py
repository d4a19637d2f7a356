"""The `pyblob` subcommands, one module per family; `pyblob.cli` assembles them."""
