"""Python WebRTC peers (aiortc) that talk to Parley like a browser: library, CLI and echo bot.

Runs in its own asyncio process; the web app never imports this package.
"""
