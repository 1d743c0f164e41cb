"""The ``pierhead`` command: the one place that puts the broker and the SDK together.

``schema``, ``broker`` and ``sdk`` do not know of each other beyond ``schema``: this package
composes them into one command (``pierhead serve`` runs the broker, the other subcommands are
SDK clients) and imports the broker only for the subcommands that run it.
"""
