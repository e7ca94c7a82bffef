"""The aiohttp shell: the app, routes, responses, the access log, the server and its lifecycle."""
