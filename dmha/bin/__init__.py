"""Thin command-line tools called by the shell scripts in steps/, utils/ and local/."""
