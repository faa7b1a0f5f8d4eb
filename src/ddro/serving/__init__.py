"""Serving a trained model: the HTTP search service and its search page (`ddro serve`, extra `serve`)."""
