"""ops's agents, one module each, each exposing ``TOOLS: list[Tool]``.

Nothing is imported here: a module's clients (slack_sdk, psycopg, a model runtime) load
only when the module that needs them is imported, so ``smallhold ops --help`` stays quick.
"""
