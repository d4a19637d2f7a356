"""The composition package: settings, the ASGI app and the `pyblob` command wire the layers together."""
