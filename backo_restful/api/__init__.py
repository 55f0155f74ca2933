"""The API layers over the engine.

:mod:`.basic` returns tuples and needs no Flask; :mod:`.flask` serves Flask-RESTful
routes, and :mod:`.flask_auth` gives the caller of a Flask request (``current_user``).
"""
