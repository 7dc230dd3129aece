from smtpconf.cli import main

raise SystemExit(main())
