"""Generated stubs of cift.auth.v1; regenerate with `python tools/gen_protos.py`, never edit."""
