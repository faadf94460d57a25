"""`posaudit ingest` paused inside its transaction, every row written and none committed: the
kill test's way in.

    python tests/ingest/hooked_ingest.py ingest --db STORE ...

After the ingest's last write (its ``ingested_files`` rows) it prints ``posaudit: test hook:
paused at written`` on stderr and sleeps until killed. The store's own append is wrapped
here, so the product carries no test code.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from posaudit.store.db import Store

append = Store.append


def pausing(self: Store, table: str, data: Any) -> None:
    append(self, table, data)
    if table == "ingested_files":
        sys.stderr.write("posaudit: test hook: paused at written\n")
        sys.stderr.flush()
        time.sleep(3600)


if __name__ == "__main__":
    Store.append = pausing  # type: ignore[method-assign]
    from posaudit.cli import main

    sys.argv = ["posaudit", *sys.argv[1:]]
    main()
