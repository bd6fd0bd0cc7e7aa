"""The FoleySpace job server (installed as ``foleyspace.server``): a ZeroMQ ROUTER hosting the
pipeline in worker processes, with jobs persisted in SQLite. See ``docs/protocol.md``."""
