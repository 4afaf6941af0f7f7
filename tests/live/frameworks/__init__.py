"""Flask, Bottle and Pyramid apps wrapped by the middleware, run by the live servers."""
