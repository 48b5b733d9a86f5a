"""code: a coding agent that plans, edits a copy of the project, tests in a sandbox, reflects.

Layout: ``sandbox`` (bubblewrap + limits), ``workspace`` (the run's git copy), ``testing``
(run and read the checks), ``signatures`` / ``breaker`` / ``reflection`` / ``safety`` (pure
decisions), ``memory`` (what past runs taught), ``agent`` (the loop as a DBOS workflow),
``cli`` (``smallhold code``).
"""
