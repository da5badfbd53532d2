#!/usr/bin/env python3
"""Publish one message to a streamgate identity (or shared channel).

Two paths, the same payload bytes reach the subscribers either way:

* HTTP (default, standard library only): POST {url}/api/publish with a server API key
  (one of `server.api_keys`). Every node delivers it, whatever the broker.
* Redis (--redis URL, needs `pip install redis`): PUBLISH {prefix}:{identity} straight
  on the Redis every node shares (`broker.kind: redis`).

The message argument is sent as JSON: when it already is valid JSON (an object, a
number, "quoted text"...) it is sent exactly as written, otherwise it is sent as a JSON
string (hello -> "hello"). Subscribers receive that JSON text verbatim.

Examples:
  # against `streamgate serve` with no config (it prints the API key):
  python3 examples/publisher.py --api-key KEY --identity demo '{"hello":"world"}'
  STREAMGATE_API_KEY=KEY python3 examples/publisher.py --identity 42 'plain text'
  python3 examples/publisher.py --api-key KEY --channel lobby '{"n":1}'
  # straight through Redis (no API key needed):
  python3 examples/publisher.py --redis redis://127.0.0.1:6379 --identity 42 '{"n":1}'

Exit status: 0 when the message was accepted (HTTP 202 / Redis PUBLISH ok), 1 otherwise.
"""

import argparse
import json
import os
import sys
import urllib.error
import urllib.request


def payload_text(message: str) -> str:
    """The JSON text to publish: the message itself when it is JSON, else a JSON string."""
    try:
        json.loads(message)
        return message
    except ValueError:
        return json.dumps(message)


def publish_http(url: str, api_key: str, target: dict, data: str, timeout: float) -> int:
    # Build the body by hand so that `data` is sent exactly as written: the server
    # forwards the raw JSON text of "data", byte for byte.
    (field, name), = target.items()
    body = '{"%s": %s, "data": %s}' % (field, json.dumps(name), data)
    request = urllib.request.Request(
        url.rstrip("/") + "/api/publish",
        data=body.encode("utf-8"),
        method="POST",
        headers={
            "Authorization": "Bearer " + api_key,
            "Content-Type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read() or b"{}")
            print(f"{response.status} {json.dumps(answer)}")
            return 0 if response.status == 202 else 1
    except urllib.error.HTTPError as e:
        # Every streamgate error is {"error": "..."}: 400 bad body, 401 missing/invalid
        # API key, 503 not ready (broker down) or publish failed.
        text = e.read().decode("utf-8", "replace")
        try:
            text = json.loads(text)["error"]
        except (ValueError, KeyError, TypeError):
            pass
        print(f"{e.code} error: {text}", file=sys.stderr)
        return 1
    except urllib.error.URLError as e:
        print(f"cannot reach {url}: {e.reason}", file=sys.stderr)
        return 1


def publish_redis(redis_url: str, topic: str, data: str) -> int:
    try:
        import redis  # optional dependency: pip install redis
    except ImportError:
        print("--redis needs redis-py: pip install redis", file=sys.stderr)
        return 1
    try:
        client = redis.Redis.from_url(redis_url)
        # PUBLISH returns how many subscriptions got it: each streamgate node holds
        # one pattern subscription ({prefix}:*), so this is about the number of nodes.
        receivers = client.publish(topic, data.encode("utf-8"))
    except redis.RedisError as e:
        print(f"redis: {e}", file=sys.stderr)
        return 1
    print(f"PUBLISH {topic}: {receivers} subscriber(s)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Publish one message to a streamgate identity or channel.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("Examples:", 1)[1] if "Examples:" in __doc__ else None,
    )
    parser.add_argument(
        "--url",
        default=os.environ.get("STREAMGATE_URL", "http://127.0.0.1:8080"),
        help="streamgate base URL (default $STREAMGATE_URL or http://127.0.0.1:8080)",
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("STREAMGATE_API_KEY"),
        help="a key from server.api_keys (default $STREAMGATE_API_KEY)",
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--identity", help="identity to deliver to (the token's sub)")
    target.add_argument("--channel", help="shared channel name (chat.channel_prefix)")
    parser.add_argument(
        "--redis",
        metavar="REDIS_URL",
        help="publish with redis-py PUBLISH instead of HTTP, e.g. redis://127.0.0.1:6379",
    )
    parser.add_argument(
        "--prefix",
        help="topic prefix for --redis (default: streams for --identity, channels for --channel)",
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="HTTP timeout, seconds")
    parser.add_argument("message", help="payload: JSON as written, anything else as a JSON string")
    args = parser.parse_args()

    data = payload_text(args.message)
    if args.redis:
        prefix = args.prefix or ("streams" if args.identity else "channels")
        topic = f"{prefix}:{args.identity or args.channel}"
        return publish_redis(args.redis, topic, data)
    if not args.api_key:
        parser.error("--api-key (or STREAMGATE_API_KEY) is required for HTTP publishing")
    target = {"identity": args.identity} if args.identity else {"channel": args.channel}
    return publish_http(args.url, args.api_key, target, data, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
