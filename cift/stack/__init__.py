"""The `cift` command: embedded infrastructure and the launcher of the whole mesh.

Nothing in here runs inside a service process; services never import this package.
"""
