"""``python -m baghunter``: the same command as the ``baghunter`` console script."""

from baghunter.cli import app

app(prog_name="baghunter")
