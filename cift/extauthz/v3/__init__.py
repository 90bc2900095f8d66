"""Generated stubs of cift.extauthz.v3; regenerate with `python tools/gen_protos.py`, never edit."""
