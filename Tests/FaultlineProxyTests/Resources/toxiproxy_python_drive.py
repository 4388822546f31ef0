"""Drives a Toxiproxy-compatible API with toxiproxy-python (PyPI), a client no one in this project
wrote, the way its own test suite does: proxies in front of a single-threaded socketserver on
`localhost:PORT`, probed with its `can_connect_to` helper (connect, then close at once).

Usage: toxiproxy_python_drive.py API_PORT. Prints one line per check; exits 0 when all pass.
"""
import socket
import socketserver
import sys
import threading
import time

from toxiproxy import Toxiproxy
from toxiproxy.exceptions import InvalidToxic, ProxyExists
from toxiproxy.utils import can_connect_to

toxiproxy = Toxiproxy()
toxiproxy.update_api_consumer("127.0.0.1", int(sys.argv[1]))
failures = []


def check(name, condition, detail=""):
    print(("ok   " if condition else "FAIL ") + name + ("" if condition else ": " + str(detail)), flush=True)
    if not condition:
        failures.append(name)


class LineHandler(socketserver.StreamRequestHandler):
    """As toxiproxy-python's test helper: answers one line, then the connection ends."""

    def handle(self):
        if self.rfile.readline().strip():
            self.wfile.write(b"omgs\n")


class Upstream:
    """toxiproxy-python's `tcp_server()`: one connection at a time, so a connection the proxy
    never closes blocks every later one and the final shutdown."""

    def __enter__(self):
        self.server = socketserver.TCPServer(("127.0.0.1", 0), LineHandler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        # shutdown() waits for the handler in progress: bounded here, so a hang is a failure.
        stopper = threading.Thread(target=self.server.shutdown, daemon=True)
        stopper.start()
        stopper.join(10)
        check("the upstream shuts down (every proxied connection was closed)", not stopper.is_alive())
        self.server.server_close()


def round_trip(host, port):
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        start = time.monotonic()
        sock.sendall(b"omg\n")
        reply = sock.recv(1024)
        return reply, time.monotonic() - start
    finally:
        sock.close()


def raises(kind, call):
    try:
        call()
    except kind:
        return True
    except Exception as error:  # noqa: BLE001 - reported as the wrong kind
        print("     raised " + repr(error), flush=True)
    return False


check("running", toxiproxy.running())
check("version", isinstance(toxiproxy.version(), (str, bytes)))
toxiproxy.destroy_all()

with Upstream() as upstream:
    proxy = toxiproxy.create(upstream="localhost:%d" % upstream.port, name="test_proxy")
    host, port = proxy.listen.split(":")
    check("create answers the bound listen address", port != "0", proxy.listen)
    check("create with the same name raises ProxyExists",
          raises(ProxyExists, lambda: toxiproxy.create(upstream="localhost:1", name="test_proxy")))
    for attempt in range(5):
        check("can_connect_to %d (connect, close at once)" % attempt, can_connect_to(host, int(port)))
    reply, _ = round_trip(host, port)
    check("a line goes through and is answered", reply == b"omgs\n", reply)

    proxy.add_toxic(type="latency", attributes={"latency": 100})
    proxy.add_toxic(type="latency", attributes={"latency": 100}, name="second_latency_downstream")
    reply, elapsed = round_trip(host, port)
    check("two latency toxics add up", reply == b"omgs\n" and elapsed >= 0.2, elapsed)
    check("get_toxic", proxy.get_toxic("latency_downstream").attributes["latency"] == 100)
    check("an invalid stream raises InvalidToxic",
          raises(InvalidToxic, lambda: proxy.add_toxic(type="latency", attributes={"latency": 1}, stream="lolstream")))

    proxy.disable()
    check("disabled: cannot connect", can_connect_to(host, int(port)) is False)
    proxy.enable()
    check("enabled: can connect", can_connect_to(host, int(port)))
    check("toxics survive disable and enable", len(proxy.toxics()) == 2, proxy.toxics())

    proxy.destroy_toxic("second_latency_downstream")
    check("destroy_toxic", list(proxy.toxics()) == ["latency_downstream"], proxy.toxics())
    with proxy.down():
        check("down: cannot connect", can_connect_to(host, int(port)) is False)
    check("after down: can connect", can_connect_to(host, int(port)))

    proxy.disable()
    check("reset", toxiproxy.reset())
    check("reset enabled the proxy", can_connect_to(host, int(port)))
    check("reset removed the toxics", proxy.toxics() == {}, proxy.toxics())
    check("the listen address is kept", toxiproxy.get_proxy("test_proxy").listen == proxy.listen)

populated = toxiproxy.populate([
    {"name": "one", "upstream": "localhost:3306", "listen": "127.0.0.1:0"},
    {"name": "two", "upstream": "localhost:3306", "listen": "127.0.0.1:0"},
])
check("populate creates the proxies", sorted(p.name for p in populated) == ["one", "two"])
for created in populated:
    h, p = created.listen.split(":")
    check("populated %s listens" % created.name, can_connect_to(h, int(p)))
check("destroy", toxiproxy.get_proxy("one").destroy())
check("get_proxy of a deleted proxy is None", toxiproxy.get_proxy("one") is None)
toxiproxy.destroy_all()
check("destroy_all", toxiproxy.proxies() == {})

print(f"{len(failures)} failed", flush=True)
sys.exit(1 if failures else 0)
