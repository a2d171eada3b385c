"""Both planes in one process on one port: seed A's always-on machine (Twilio + OpenAI on Fly.io).

`python -m all_in_one` in production (all_in_one/Dockerfile, fly.toml); the local stack serves the
same gateway.
"""
