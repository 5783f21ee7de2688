"""The command-line programs behind tools/."""
