"""``sitecustomize`` for the Python child processes of a test run (see ``tests.secret_scan``)."""
