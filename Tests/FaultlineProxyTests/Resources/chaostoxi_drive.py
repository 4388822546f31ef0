"""Drives a Toxiproxy-compatible API with chaostoolkit-toxiproxy (chaostoxi), a client no one
in this project wrote, and checks that each call has its effect on real connections.

Usage: chaostoxi_drive.py API_PORT. Prints one line per check; exits 0 when all pass.
"""
import socket
import sys
import threading
import time

from chaostoxi.proxy.actions import create_proxy, delete_proxy, disable_proxy, enable_proxy, modify_proxy, reset
from chaostoxi.proxy.probes import get_proxy_attribute, proxy_exist
from chaostoxi.toxic.actions import (
    create_bandwith_degradation_toxic,
    create_latency_toxic,
    create_limiter_toxic,
    create_slicer_toxic,
    create_slow_connection_close_toxic,
    create_timeout_toxic,
    create_toxic,
    delete_toxic,
)

config = {"toxiproxy_host": "127.0.0.1", "toxiproxy_port": int(sys.argv[1])}
failures = []


def check(name, condition, detail=""):
    print(("ok   " if condition else "FAIL ") + name + ("" if condition else ": " + str(detail)), flush=True)
    if not condition:
        failures.append(name)


# An echo upstream that half-closes when the client does.
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", 0))
server.listen(128)


def echo(connection):
    with connection:
        while True:
            try:
                data = connection.recv(65536)
            except OSError:
                return
            if not data:
                try:
                    connection.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            try:
                connection.sendall(data)
            except OSError:
                return


def serve():
    while True:
        try:
            connection, _ = server.accept()
        except OSError:
            return
        threading.Thread(target=echo, args=(connection,), daemon=True).start()


threading.Thread(target=serve, daemon=True).start()


def connect():
    client = socket.create_connection(("127.0.0.1", int(config["web_PORT"])), timeout=5)
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return client


def exchange(payload=b"ping", half_close=False):
    """Sends payload, reads until the echo is complete or the connection ends.
    Returns (bytes, seconds, how it ended), timed from before connecting: a toxic that runs
    from when the connection opens (timeout, bandwidth) may start before connect() returns here."""
    start = time.monotonic()
    client = connect()
    received = b""
    end = "complete"
    try:
        client.sendall(payload)
        if half_close:
            client.shutdown(socket.SHUT_WR)
        while len(received) < len(payload) or half_close:
            chunk = client.recv(65536)
            if not chunk:
                end = "eof"
                break
            received += chunk
    except ConnectionResetError:
        end = "reset"
    except socket.timeout:
        end = "timeout"
    finally:
        client.close()
    return received, time.monotonic() - start, end


upstream_port = server.getsockname()[1]
check("create_proxy", create_proxy("web", "127.0.0.1", upstream_port, listen_host="127.0.0.1", configuration=config) is True)
check("create_proxy exported the bound port", int(config.get("web_PORT", 0)) > 0, config)
check("proxy_exist", proxy_exist("web", configuration=config) is True)
check("get_proxy_attribute enabled", get_proxy_attribute("web", "enabled", configuration=config) is True)
data, _, _ = exchange(b"hello")
check("traffic flows through the proxy", data == b"hello", data)

check("create_latency_toxic", create_latency_toxic("web", "lat", 200, configuration=config) is True)
data, seconds, _ = exchange()
check("latency delays the reply", data == b"ping" and seconds >= 0.2, (data, seconds))
check("delete_toxic latency", delete_toxic("web", "lat", configuration=config) is True)
data, seconds, _ = exchange()
check("latency gone after delete_toxic", data == b"ping" and seconds < 0.15, seconds)

check("create_bandwith_degradation_toxic", create_bandwith_degradation_toxic("web", "bw", 50, configuration=config) is True)
payload = bytes(range(256)) * 80
data, seconds, _ = exchange(payload)
check("bandwidth paces the reply", data == payload and seconds >= 0.38, seconds)
check("delete_toxic bandwidth", delete_toxic("web", "bw", configuration=config) is True)

check("create_slow_connection_close_toxic", create_slow_connection_close_toxic("web", "sc", 300, configuration=config) is True)
data, seconds, end = exchange(b"bye", half_close=True)
check("slow_close delays the close", data == b"bye" and end == "eof" and seconds >= 0.3, (data, seconds, end))
check("delete_toxic slow_close", delete_toxic("web", "sc", configuration=config) is True)

check("create_timeout_toxic", create_timeout_toxic("web", "to", 200, configuration=config) is True)
data, seconds, end = exchange(b"lost")
check("timeout drops data and closes", data == b"" and end == "eof" and seconds >= 0.19, (data, seconds, end))
check("delete_toxic timeout", delete_toxic("web", "to", configuration=config) is True)

check("create_slicer_toxic", create_slicer_toxic("web", "sl", 10, 5, 100, configuration=config) is True)
payload = bytes(range(256)) * 4
data, _, _ = exchange(payload)
check("slicer keeps the bytes intact", data == payload, len(data))
check("delete_toxic slicer", delete_toxic("web", "sl", configuration=config) is True)

check("create_limiter_toxic", create_limiter_toxic("web", "lim", 5, configuration=config) is True)
data, _, end = exchange(b"0123456789")
check("limit_data cuts at the limit", data == b"01234" and end in ("eof", "reset"), (data, end))
check("delete_toxic limit_data", delete_toxic("web", "lim", configuration=config) is True)

check(
    "create_toxic reset_peer upstream",
    create_toxic("web", "rp", "reset_peer", stream="upstream", attributes={"timeout": 0}, configuration=config) is True,
)
data, _, end = exchange(b"poke")
check("reset_peer resets", end == "reset", (data, end))
check("delete_toxic reset_peer", delete_toxic("web", "rp", configuration=config) is True)
check("delete_toxic of a missing toxic is not ok", delete_toxic("web", "rp", configuration=config) is False)

check("disable_proxy", disable_proxy("web", configuration=config) is True)
try:
    connect().close()
    refused = False
except OSError:
    refused = True
check("a disabled proxy refuses connections", refused)
check("enable_proxy", enable_proxy("web", configuration=config) is True)
data, _, _ = exchange()
check("an enabled proxy accepts again", data == b"ping", data)

check("modify_proxy", modify_proxy("web", enabled=True, configuration=config) is True)
create_latency_toxic("web", "lat", 100, configuration=config)
disable_proxy("web", configuration=config)
check("reset", reset(configuration=config) is True)
check("reset removed the toxics", get_proxy_attribute("web", "toxics", configuration=config) == [])
check("reset enabled the proxy", get_proxy_attribute("web", "enabled", configuration=config) is True)

check("create_toxic without attributes (Toxiproxy's zero attributes)", create_toxic("web", "bare", "latency", configuration=config) is True)
check("two latency toxics add up", create_latency_toxic("web", "lat", 100, configuration=config) is True)
create_latency_toxic("web", "lat2", 100, configuration=config)
data, seconds, _ = exchange()
check("two latency toxics delay the reply by their sum", data == b"ping" and seconds >= 0.2, seconds)
reset(configuration=config)

delete_proxy("web", configuration=config)
check("delete_proxy", proxy_exist("web", configuration=config) is False)

print(f"{len(failures)} failed", flush=True)
sys.exit(1 if failures else 0)
