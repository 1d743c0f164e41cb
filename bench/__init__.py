"""pierhead's benchmarks: ``python -m bench`` (or ``nox -s bench``) runs them all.

Each benchmark measures a baseline in the same run and reports its figures as a ratio to that
baseline, because absolute figures say more about the machine than about the code. Goals are
stated as such ratios, except where the requirement itself is absolute (the broker's ingest
rate and its latencies), which is then judged on the figure and printed beside the ratio.
"""
