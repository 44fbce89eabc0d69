import sys

from videorecap.cli import main

sys.exit(main())
