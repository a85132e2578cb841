from lakever.cli import main

main()
