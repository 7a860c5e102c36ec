"""Debug and info records for modules on the fast paths, without importing logging there.

main.py sets logging up only for -v/--debug; without that, Python drops records below WARNING. So a record
at those levels needs logging only when logging is loaded already (main.py's set-up, or a library such as
botocore): until then it would be dropped anyway, and importing logging (with traceback, textwrap,
threading) would cost each submission a few milliseconds for nothing.
"""

from __future__ import annotations

import sys


def debug(name: str, message: str, *args) -> None:
    logging = sys.modules.get("logging")
    if logging is not None:
        logging.getLogger(name).debug(message, *args)


def info(name: str, message: str, *args) -> None:
    logging = sys.modules.get("logging")
    if logging is not None:
        logging.getLogger(name).info(message, *args)
