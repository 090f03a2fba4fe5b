"""Code the tests (``tests/``) and the benchmarks (``bench/``) share. Never shipped (the wheel holds
``cockpit`` only) and never imported by cockpit itself; the benchmarks do not import the tests, so
what both need lives here."""
