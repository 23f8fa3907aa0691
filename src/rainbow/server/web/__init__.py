"""The web dashboard: clusters and jobs at a glance, served by the server itself (``rainbow server --web``).

Server-rendered HTML (Jinja2, autoescaped) over aiohttp in the gRPC server's
event loop; live updates are server-sent events fed by the same event tail as
``WatchJobs``. Needs the ``web`` extra; the server imports this package only
when ``--web`` is given.
"""
