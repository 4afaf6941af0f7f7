"""A Bottle app with a WebSocket route (the Bottle page of the docs includes this file)."""

import bottle

from wsgiws.bottle import WebSocketPlugin

SECRET = "change me"

app = bottle.Bottle()
app.install(WebSocketPlugin(max_message_size=64 * 1024))


@app.get("/login")
def login():
    bottle.response.set_cookie("user", bottle.request.query.user, secret=SECRET)
    return "signed in\n"


@app.route("/rooms/<room:int>", websocket=True)
def chat(ws, room):
    # bottle.request is the upgrade request.
    user = bottle.request.get_cookie("user", secret=SECRET) or "guest"
    ws.send(f"{user} joined room {room}")
    for message in ws:
        ws.send(f"{user}@{room}: {message}")


@app.route("/upload", websocket={"max_message_size": 16 * 1024 * 1024, "compression": None})
def upload(ws):
    data = ws.receive()
    ws.send(f"received {len(data)} bytes")
