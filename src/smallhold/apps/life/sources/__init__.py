"""life's source parsers: one module per export format, each a generator of typed records.

``calendar`` (iCalendar, recurrences expanded), ``mail`` (mbox), ``money`` / ``ofx`` /
``csvbank`` (OFX/QFX, bank and card CSV) and ``health`` (Apple Health, sleep/steps CSV).
Each yields records and a ``Problem`` for every part it could not read, and raises
``SourceError`` only when the file is not that format at all. They stream where the format
allows, do no I/O besides reading the file, and know nothing of the vault.
"""
