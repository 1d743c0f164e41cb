"""pierhead's benchmarks: ``python -m bench`` (or ``nox -s bench``) runs them all.

Each benchmark measures a baseline in the same run and states its goal as a ratio to that
baseline, because absolute figures say more about the machine than about the code.
"""
