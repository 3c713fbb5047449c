"""What the end-to-end server tests share: one HTTP call to the server under test."""
import http.client
import json


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
