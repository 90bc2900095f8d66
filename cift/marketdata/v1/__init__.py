"""Generated stubs of cift.marketdata.v1; regenerate with `python tools/gen_protos.py`, never edit."""
