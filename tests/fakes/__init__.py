"""Local servers speaking outside providers' documented protocols (Alpaca, Massive).

Written from the providers' public documentation, not from our client code, and
started by the tests and benches: the only fakes the integration tests use.
"""
