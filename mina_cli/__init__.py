"""The `mina` command: the composition root that wires mina, api, workers and scheduler.

It lives outside `mina` so the domain package never imports the layers built on it.
"""
