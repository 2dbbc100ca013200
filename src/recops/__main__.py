from recops.cli.main import main

main()
