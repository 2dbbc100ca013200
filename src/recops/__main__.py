from recops.cli import main

main()
