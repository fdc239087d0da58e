"""`python -m svcnet.dns ...` runs `svcnet dns ...` (until svcnet's own CLI routes to it)."""
import sys

from svcnet.dns.daemon import main

sys.exit(main())
