from streamseg.cli import main

raise SystemExit(main())
