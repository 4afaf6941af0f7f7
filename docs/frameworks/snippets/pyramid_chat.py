"""A Pyramid app with WebSocket views (the Pyramid page of the docs includes this file)."""

from pyramid.config import Configurator
from pyramid.response import Response
from pyramid.session import SignedCookieSessionFactory


def login(request):
    request.session["user"] = request.GET["user"]
    return Response("signed in\n")


def chat(ws):
    request = ws.request  # the Pyramid request
    room = int(request.matchdict["room"])
    user = request.session.get("user", "guest")
    ws.send(f"{user} joined room {room}")
    for message in ws:
        ws.send(f"{user}@{room}: {message}")


def room_page(request):
    return Response("<!doctype html><p>open a WebSocket to this URL to chat</p>\n")


def make_app():
    with Configurator() as config:
        config.include("wsgiws.pyramid")
        config.set_websocket_options(max_message_size=64 * 1024)
        config.set_session_factory(SignedCookieSessionFactory("change me"))
        config.add_route("login", "/login")
        config.add_view(login, route_name="login")
        config.add_route("room", r"/rooms/{room:\d+}")
        # The same URL: a page for browsers, the WebSocket for handshakes.
        config.add_view(room_page, route_name="room")
        config.add_websocket_view(chat, route_name="room")
        return config.make_wsgi_app()


app = make_app()
