"""Subcommands of the ``kiln`` command kept in modules of their own.

Each module defines ``add_parser(sub)``, which adds its parser to the
subparsers object and sets ``func`` to its handler; ``kiln.cli`` lists the
modules in ``_COMMAND_MODULES``.
"""
