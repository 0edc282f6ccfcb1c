from metamesh.cli.main import main

raise SystemExit(main())
