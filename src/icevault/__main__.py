from icevault.cli.main import main

main()
