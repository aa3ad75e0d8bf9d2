import sys

from uniformerv2.cli.main import main

sys.exit(main())
