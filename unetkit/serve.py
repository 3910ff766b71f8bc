"""`python -m unetkit.serve`: the command `make serve` runs."""

from unetkit.cli.serve import run

if __name__ == "__main__":
    run()
