"""The teleshift command line (scripts/teleshift). Subcommands live in teleshift_cli.commands."""
