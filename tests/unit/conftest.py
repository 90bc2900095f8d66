"""Unit-test settings shared by every package under tests/unit.

Hypothesis fails an example that runs longer than its default 200 ms deadline. That is
a timed assertion: on a loaded machine (or under mutmut's trampolines) an ordinary
example overruns it and the test fails for a reason unrelated to what it checks. The
examples here assert values, never speed (performance lives in bench/), so no deadline.
"""

from __future__ import annotations

from hypothesis import settings

settings.register_profile("cift-unit", deadline=None)
settings.load_profile("cift-unit")
