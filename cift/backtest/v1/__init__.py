"""Generated stubs of cift.backtest.v1; regenerate with `python tools/gen_protos.py`, never edit."""
