"""The API layers: :mod:`.basic` (tuples, no Flask) and :mod:`.flask` (Flask-RESTful)."""
