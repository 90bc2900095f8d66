"""Generated stubs of cift.risk.v1; regenerate with `python tools/gen_protos.py`, never edit."""
