from edgekit.cli.app import main

main()
