"""`moviegenre serve`: the trained pipeline behind HTTP (FastAPI on uvicorn), loaded once.

The artifacts (branches, featurizers, ensemble) load at startup, before the port opens, and
one warm-up prediction traces what TensorFlow traces on first use, so the first request
costs what every later one does. Then:

- ``POST /predict``: a multipart form with a ``poster`` file and/or a ``plot`` field (or a
  JSON body ``{"plot": "..."}``) gives what ``moviegenre predict`` prints: the branches that
  scored the movie, its genre set (at the thresholds fitted on val for those branches) and
  each genre's ensemble probability; ``?branches=true`` adds each branch's, ``?top=N`` keeps
  the N most probable genres.
- ``GET /health``: the genres, the branches loaded, fingerprints of the models and the git
  commit.
- ``GET /``: a page to upload a poster and paste a plot.
- ``GET /openapi.json``: the OpenAPI description, generated from ``models``.

Every 4xx and 5xx answer is ``{"error": "..."}``, and a 500 says only that something failed:
what failed goes to the log, never to the client. What one client can make the server spend
is bounded; every bound is in ``limits``.

One module per concern, importing only downwards (``moviegenre.predict`` and below, never the
command line):

- ``server``: check the options, load the predictor, run uvicorn (what `moviegenre serve` calls);
- ``config``: the options' checks (a port probe among them) and uvicorn's settings;
- ``protocol``: uvicorn's h11 protocol with a header deadline and its own answers in JSON;
- ``app``: the FastAPI application and its routes; ``reading``: the movie a request carries;
- ``middleware``: body size, deadline and in-flight bytes, and the Host check;
- ``batching``: one prediction at a time, with the requests that queued meanwhile;
- ``models``: the request and answer models the OpenAPI description is generated from;
- ``health``: what ``/health`` reports; ``page``: the page at ``/`` (``static/index.html``).

This package imports nothing heavy on import, so the command line can read ``limits`` for its
defaults without loading FastAPI.
"""
