from exposed.cli import entry

entry()
