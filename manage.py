#!/usr/bin/env python
"""Django's command-line utility for Courtside."""

import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backoffice.settings.local")
    if sys.argv[1:2] == ["embedded_db"]:
        os.environ["COURTSIDE_EMBEDDED_AUTOSTART"] = "0"
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
