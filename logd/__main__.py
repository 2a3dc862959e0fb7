from logd.cli import main

raise SystemExit(main())
