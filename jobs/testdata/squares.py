# The exec runtime's protocol: one JSON request on stdin, one JSON value on
# stdout.
import json, sys

req = json.load(sys.stdin)
if req["op"] == "split":
    xs, n = req["input"], req["n"]
    print(json.dumps([xs[i::n] for i in range(n)]))
elif req["op"] == "run":
    if req["part"] == [13]:
        sys.exit("unlucky part")
    print(json.dumps(sum(x * x for x in req["part"])))
elif req["op"] == "merge":
    print(json.dumps({"sum": sum(req["results"])}))
