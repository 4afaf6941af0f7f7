"""In-process tests of the Flask, Bottle and Pyramid integrations (``wsgiws.flask`` ...)."""
