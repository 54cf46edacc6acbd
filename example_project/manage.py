#!/usr/bin/env python3
"""The example project's manage.py: ``python3 example_project/manage.py demo`` runs it all."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
