"""cockpit's benchmarks (``make bench``): not part of ``make test``. See bench/run.py."""
