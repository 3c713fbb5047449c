"""What the end-to-end server tests share: the real `clickrt serve` as a subprocess, and one
HTTP call to it."""
import http.client
import json
import re
import subprocess


def request(port, method, path, body=None, headers=None, timeout=30):
    """(status, parsed JSON body, or the text when it is not JSON). Dicts and lists are sent as JSON."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    try:
        return r.status, json.loads(data)
    except ValueError:
        return r.status, data.decode(errors="replace")


_OWN_TOKEN = object()


class Server:
    """`clickrt serve --repo REPO` on free ports (the port is read from its first stdout line);
    `token` is sent as the admin bearer token on every request unless a call names another
    (None: no token)."""

    def __init__(self, clickrt, repo, extra, log, env=None, token=None, timeout=30):
        self.proc = subprocess.Popen(
            [clickrt, "serve", "--repo", repo, "--http-port", "0", "--grpc-port", "0"] + extra,
            stdout=subprocess.PIPE, stderr=log, text=True, env=env)
        line = self.proc.stdout.readline()
        if not line.startswith("serving"):
            raise RuntimeError("server did not start: %r" % line)
        # "serving http://127.0.0.1:P grpc 127.0.0.1:Q"
        self.port = int(line.split()[1].rsplit(":", 1)[1])
        self.grpc_addr = line.split()[3] if len(line.split()) > 3 else None
        self.url = "http://127.0.0.1:%d" % self.port
        self.token, self.timeout = token, timeout

    def request(self, method, path, body=None, token=_OWN_TOKEN):
        token = self.token if token is _OWN_TOKEN else token
        headers = {"Authorization": "Bearer " + token} if token else {}
        return request(self.port, method, path, body, headers, timeout=self.timeout)

    def metric(self, name, **labels):
        """Sum of the samples of `name` whose labels include `labels`; None when there is none."""
        _, text = self.request("GET", "/metrics")
        total, found = 0.0, False
        for line in text.splitlines():
            m = re.match(r"^%s\{([^}]*)\} (\S+)$" % re.escape(name), line)
            if not m:
                continue
            got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
            if all(got.get(k) == v for k, v in labels.items()):
                total += float(m.group(2))
                found = True
        return total if found else None

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
