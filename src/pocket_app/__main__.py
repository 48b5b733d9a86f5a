"""Briefcase's entry point for the pocket app (``briefcase dev|build|run``): opens the window."""

from smallhold.apps.pocket.gui import main

main()
