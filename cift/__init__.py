"""CIFT Markets: shared runtime, command line and generated protocol stubs."""
