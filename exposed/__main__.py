from exposed.cli import main

main(prog_name="exposed")
