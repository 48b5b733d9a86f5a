from smallhold.cli import main

main()
