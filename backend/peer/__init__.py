"""Python WebRTC peers (aiortc) that talk to Parley like a browser: library, CLI and echo bot.

Runs in its own asyncio process. Of the web app it imports only the wire models
(backend.signaling.protocol); the web app never imports this package.
"""
