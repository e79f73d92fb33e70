"""Thin entry point: ``python app.py`` serves the web app (same as ``assistant serve``).

Usage::

    python app.py [--host 127.0.0.1] [--port 7860] [--index index/]
"""

from __future__ import annotations

import sys

from assistant.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
