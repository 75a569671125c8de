from residency.cli import main

main()
