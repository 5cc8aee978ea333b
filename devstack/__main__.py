import sys

from devstack.run import main

sys.exit(main())
