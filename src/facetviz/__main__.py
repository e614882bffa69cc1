import sys

from facetviz.cli import main

sys.exit(main())
