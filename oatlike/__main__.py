"""``python -m oatlike`` is the ``oatlike`` command."""

from oatlike.cli import main

if __name__ == "__main__":
    main()
