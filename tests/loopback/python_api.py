#!/usr/bin/env python3
"""An HTTP/1.1-only fake Kubernetes API written from scratch with Python's http.server and ssl,
sharing no code or assumptions with kube-reach's own fakes. Usage:
python_api.py CHAIN KEY MODE PORT_FILE. Binds 127.0.0.1 (port 0), writes the port to PORT_FILE,
serves for at most 60 s. Modes shape every response:
  length    Content-Length (the ordinary case)
  close     Content-Length and `Connection: close`
  chunked   chunked in 7-byte pieces
  trickle   Content-Length, the body in 5-byte writes 2 ms apart
  http10    HTTP/1.0, no length: the body ends when the connection does
  closenolen HTTP/1.1, `Connection: close`, no length, the body trickled until the close
Python's ssl closes without close_notify, as many servers do."""
import http.server, json, socketserver, ssl, sys, threading, time

chain, key, mode, port_file = sys.argv[1:5]
TOKEN = "good-token"

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0" if mode == "http10" else "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, code, body, ctype="application/json"):
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        if mode in ("close", "closenolen"):
            self.send_header("Connection", "close")
            self.close_connection = True
        if mode == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(body), 7):
                piece = body[i:i + 7]
                self.wfile.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            return
        if mode in ("http10", "closenolen"):
            self.close_connection = True
            self.end_headers()
            for i in range(0, len(body), 9):
                self.wfile.write(body[i:i + 9])
                self.wfile.flush()
                time.sleep(0.005)
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        step = 5 if mode == "trickle" else len(body) or 1
        for i in range(0, len(body), step):
            self.wfile.write(body[i:i + step])
            self.wfile.flush()
            if mode == "trickle":
                time.sleep(0.002)

    def authed(self):
        return self.headers.get("Authorization") == "Bearer " + TOKEN

    def unauthorized(self):
        self.reply(401, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                         "status": "Failure", "message": "Unauthorized",
                         "reason": "Unauthorized", "code": 401})

    def do_GET(self):
        if self.path == "/version":
            return self.reply(200, {"major": "1", "minor": "30", "gitVersion": "v1.30.2",
                                    "goVersion": "go1.22.4", "platform": "linux/amd64"})
        if self.path.startswith("/readyz"):
            return self.reply(200, b"[+]ping ok\n[+]etcd ok\nreadyz check passed\n", "text/plain")
        if not self.authed():
            return self.unauthorized()
        self.reply(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                         "reason": "NotFound", "code": 404})

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if not self.authed():
            return self.unauthorized()
        try:
            review = json.loads(raw or b"{}")
        except ValueError:
            review = {}
        if self.path == "/apis/authentication.k8s.io/v1/selfsubjectreviews":
            return self.reply(201, {
                "kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"creationTimestamp": None},
                "status": {"userInfo": {"username": "system:serviceaccount:ci:deployer",
                                        "uid": "5f1c", "groups": ["system:serviceaccounts",
                                                                  "system:authenticated"]}}})
        if self.path == "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews":
            review.setdefault("metadata", {})["creationTimestamp"] = None
            review["status"] = {"allowed": True, "reason": "RBAC: allowed by ClusterRoleBinding"}
            return self.reply(201, review)
        self.reply(404, {"kind": "Status", "code": 404})

class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

server = Server(("127.0.0.1", 0), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(chain, key)
context.set_alpn_protocols(["http/1.1"])
server.socket = context.wrap_socket(server.socket, server_side=True)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
import os
os.rename(port_file + ".tmp", port_file)
threading.Timer(60, server.shutdown).start()
server.serve_forever()
