"""HTTP resources, one package each (``resources.py`` + ``schemas.py``)."""
