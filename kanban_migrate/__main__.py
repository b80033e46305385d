from kanban_migrate.cli import main

raise SystemExit(main())
