"""``python -m crawl2chat.cli``: the same as the ``crawl2chat`` command."""

import sys

from crawl2chat.cli import main

sys.exit(main())
