"""The web app: FastAPI server (``server.create_app``), Gradio UI (``ui``), feedback store, rate limit,
and the embeddable widget (``static/``).

Usage::

    from assistant.web.server import create_app, serve
    app = create_app(settings)        # an ASGI app for uvicorn
    serve(settings)                   # what ``assistant serve`` and ``python app.py`` run
"""
