"""A Flask app with a WebSocket route (the Flask page of the docs includes this file)."""

from flask import Flask, g, request, session

from wsgiws.flask import WebSockets

app = Flask(__name__)
app.secret_key = "change me"
websockets = WebSockets(app, max_message_size=64 * 1024)


@app.get("/login")
def login():
    session["user"] = request.args["user"]
    return "signed in\n"


@app.before_request
def load_user():
    g.user = session.get("user", "guest")


@websockets.route("/rooms/<int:room>")
def chat(ws, room):
    # The request context is live: request, session, g and current_app work.
    ws.send(f"{g.user} joined room {room}")
    for message in ws:
        ws.send(f"{g.user}@{room}: {message}")


@websockets.route("/upload", max_message_size=16 * 1024 * 1024, compression=None)
def upload(ws):
    data = ws.receive()
    ws.send(f"received {len(data)} bytes")
