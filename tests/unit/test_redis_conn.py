"""Redis URLs (pure): standalone, Sentinel and Cluster spellings, their refusals, and no password in what is
shown. The connections against real topologies: tests/processes/test_redis_conn.py."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.redis.url import RedisTarget, parse_redis_url, redacted

# --- URLs (pure) --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://localhost", RedisTarget("standalone", (("localhost", 6379),))),
        ("redis://h:7000/3", RedisTarget("standalone", (("h", 7000),), db=3)),
        ("REDIS://h/", RedisTarget("standalone", (("h", 6379),))),
        (
            "rediss://u:p%40ss@h:6380/1",
            RedisTarget("standalone", (("h", 6380),), True, 1, username="u", password="p@ss"),
        ),
        ("redis://:only-pass@[::1]:6379", RedisTarget("standalone", (("::1", 6379),), password="only-pass")),
        ("redis://user@h", RedisTarget("standalone", (("h", 6379),), username="user")),
        ("unix:///run/redis.sock", RedisTarget("standalone", unix_path="/run/redis.sock")),
        ("unix://:pw@/run/r.sock?db=4", RedisTarget("standalone", db=4, unix_path="/run/r.sock", password="pw")),
        (
            "redis+sentinel://s1,s2:5000,[fe80::1%25eth0]:26380/mymaster",
            RedisTarget("sentinel", (("s1", 26379), ("s2", 5000), ("fe80::1%25eth0", 26380)), service_name="mymaster"),
        ),
        (
            "rediss+sentinel://u:pw@s1:26379/my-master.1/2/",
            RedisTarget("sentinel", (("s1", 26379),), True, 2, "my-master.1", username="u", password="pw"),
        ),
        ("redis+cluster://a:7000,b:7001", RedisTarget("cluster", (("a", 7000), ("b", 7001)))),
        ("rediss+cluster://:pw@a/0", RedisTarget("cluster", (("a", 6379),), True, password="pw")),
    ],
)
def test_every_scheme_parses(url: str, expected: RedisTarget) -> None:
    assert parse_redis_url(url) == expected


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("", "empty"),
        ("redis://h /0", "whitespace"),
        ("http://h", "must start with redis://, rediss://"),
        ("h:6379", "must start with redis://, rediss://"),
        ("redis://", "host is missing"),
        ("redis://h:0", "port must be"),
        ("redis://h:65536", "port must be"),
        ("redis://h:port", "port must be"),
        ("redis://h/x", "database must be a number"),
        ("redis://h/0/1", "database must be a number"),
        ("redis://a,b", "take one host"),
        ("redis://h/0?ssl=true", "query parameters are not supported"),
        ("redis://h/0#frag", "fragment"),
        ("redis://h$x", "host name may hold only"),
        ("redis://[::1", "IPv6"),
        ("unix://h/run/r.sock", "takes no host"),
        ("unix://", "absolute path"),
        ("unix:///r.sock?database=1", "only the query parameter db"),
        ("redis+sentinel://s1", "needs /service_name"),
        ("redis+sentinel://s1/m/1/2", "needs /service_name"),
        ("redis+sentinel://s1/m$/1", "service name may hold only"),
        ("redis+sentinel://s1,,s2/m", "host is missing"),
        ("redis+cluster://a/1", "only database 0"),
        ("redis+cluster://a/x", "only database 0"),
        ("redis+cluster://" + ",".join(f"h{i}" for i in range(65)), "at most 64 hosts"),
    ],
)
def test_bad_urls_are_refused_with_one_clear_line(url: str, reason: str) -> None:
    with pytest.raises(ValueError, match=r"^invalid Redis URL: ") as caught:
        parse_redis_url(url)
    message = str(caught.value)
    assert reason in message and "\n" not in message


PASSWORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/?#@:%!$", min_size=4)
SHAPES = [
    "redis://user:{p}@h:6379/0",
    "redis://:{p}@h/0",
    "rediss+sentinel://user:{p}@s1:26379,s2/mymaster/1",
    "redis+cluster://user:{p}@a:7000,b/0",
    "redis+cluster://user:{p}@a/1",  # refused (db 1) with the password in it
    "unix://user:{p}@/run/redis.sock",
    "redis://{p}@h",  # a password where a username belongs
    "redis://user:{p}",  # no host: the password sits where the host:port would be
    "redis://h:{p}/0",
    "{p}",
]


@given(secret=PASSWORDS.map(lambda p: "Zq9" + p))
def test_no_error_repr_or_log_form_shows_a_password(secret: str) -> None:
    for shape in SHAPES:
        url = shape.format(p=secret)
        assert secret not in redacted(url)
        try:
            target = parse_redis_url(url)
        except ValueError as exc:
            assert secret not in str(exc)
        else:
            assert secret not in repr(target)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://u:secret@h:6379/0", "redis://***@h:6379/0"),
        ("rediss+sentinel://:s3cr@t/x@s1,s2/m", "rediss+sentinel://***@s1,s2/m"),
        ("redis://user:secret", "redis://***"),
        ("redis://token@h", "redis://***@h"),
        ("unix:///run/r.sock?db=2&password=pw", "unix:///run/r.sock?db=2&***"),
        ("redis+cluster://a:7000,b:7001", "redis+cluster://a:7000,b:7001"),
        ("user:secret@h", "***"),
    ],
)
def test_redacted_hides_credentials_and_keeps_the_rest(url: str, shown: str) -> None:
    assert redacted(url) == shown
