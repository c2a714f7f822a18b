from tiermover.cli import app

app()
