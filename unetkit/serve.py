"""`python -m unetkit.serve`: the command the README and `make serve` have always used."""

from unetkit.cli.serve import run

if __name__ == "__main__":
    run()
