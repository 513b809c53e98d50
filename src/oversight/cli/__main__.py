from oversight.cli import app

app()
