"""Generated stubs of cift.execution.v1; regenerate with `python tools/gen_protos.py`, never edit."""
