"""The Textual workbench (`workbench tui`): a front end that renders the core's events and calls its functions."""
