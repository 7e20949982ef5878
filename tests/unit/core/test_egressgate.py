"""A token's proxy credential (core/egressgate.py): signed, expiring, matched by core/egress.py."""

from __future__ import annotations

import io

import pytest

from core import egress, egressgate, tokens

KEY = b"k" * 32
LATER = 2_000_000_000
NOW = 1_900_000_000.0


def test_a_signed_credential_verifies_and_carries_its_list() -> None:
    user, password = egressgate.credentials(KEY, "t1", ["a.test:443"], LATER)
    grant = egressgate.verify(KEY, user, password, now=NOW)
    assert grant == egressgate.Grant("t1", ("a.test:443",), LATER)
    assert grant.allows("a.test", 443)
    assert not grant.allows("a.test", 80)
    assert not grant.allows("b.test", 443)


def test_a_null_list_allows_whatever_the_operator_does() -> None:
    user, password = egressgate.credentials(KEY, "t1", None, LATER)
    grant = egressgate.verify(KEY, user, password, now=NOW)
    assert grant is not None and grant.allow is None and grant.allows("anything.test", 1)


@pytest.mark.parametrize(
    "forge",
    [
        lambda u, p: (u, p[:-1] + ("A" if p[-1] != "A" else "B")),  # another signature
        lambda u, p: (egressgate.credentials(b"other", "t1", None, LATER)[0], p),  # wider list
        lambda u, p: egressgate.credentials(b"other-key", "t1", None, LATER),  # other key
        lambda u, p: (u, ""),
        lambda u, p: ("not base64 !", p),
    ],
)
def test_a_forged_credential_is_refused(forge: object) -> None:
    user, password = egressgate.credentials(KEY, "t1", ["a.test"], LATER)
    assert callable(forge)
    forged_user, forged_password = forge(user, password)
    assert egressgate.verify(KEY, forged_user, forged_password, now=NOW) is None


def test_an_expired_credential_is_refused() -> None:
    user, password = egressgate.credentials(KEY, "t1", None, LATER)
    assert egressgate.verify(KEY, user, password, now=LATER + 1) is None


def test_no_key_verifies_nothing() -> None:
    user, password = egressgate.credentials(b"", "t1", None, LATER)
    assert egressgate.verify(b"", user, password, now=NOW) is None


def test_the_proxy_url_carries_the_credential() -> None:
    url = egressgate.proxy_url("http://egress-proxy:3128", KEY, "t1", [], LATER)
    user, password = egressgate.credentials(KEY, "t1", [], LATER)
    assert url == f"http://{user}:{password}@egress-proxy:3128"


def test_the_helpers_answer_squid_line_by_line(tmp_path: object) -> None:
    import pathlib

    assert isinstance(tmp_path, pathlib.Path)
    keyfile = tmp_path / "key"
    keyfile.write_text(KEY.decode() + "\n")  # a Swarm secret file may end in a newline
    user, password = egressgate.credentials(KEY, "t1", ["*.wild.test:8080"], 4_000_000_000)
    out = io.StringIO()
    lines = [f"{user} {password}\n", f"{user} wrong\n"]
    assert egressgate.serve(["auth", str(keyfile)], lines, out) == 0
    assert out.getvalue().splitlines()[0] == "OK"
    assert out.getvalue().splitlines()[1].startswith("ERR")
    out = io.StringIO()
    lines = [f"{user} a.wild.test 8080 -\n", f"{user} wild.test 8080\n", f"{user} a.wild.test 80\n"]
    egressgate.serve(["allows"], lines, out)
    assert out.getvalue().splitlines() == [
        "OK log=token:t1",
        "ERR log=token:t1",
        "ERR log=token:t1",
    ]
    assert egressgate.serve(["nonsense"], [], io.StringIO()) == 2


OPERATOR = ("api.example.com:443", "*.example.org", "plain.example")


@pytest.mark.parametrize(
    ("entries", "narrowed"),
    [
        (["api.example.com:443"], ("api.example.com:443",)),
        (["*.example.org:443"], ("*.example.org:443",)),
        (["*.cdn.example.org"], ("*.cdn.example.org:80", "*.cdn.example.org:443")),
        (
            ["x.example.org:80", "plain.example"],
            ("x.example.org:80", "plain.example:80", "plain.example:443"),
        ),
    ],
)
def test_a_token_list_inside_the_operators_is_normalised(
    entries: list[str], narrowed: tuple[str, ...]
) -> None:
    assert tokens.narrowed_egress(OPERATOR, entries) == narrowed


@pytest.mark.parametrize(
    "entry",
    [
        "api.example.com",  # port 80 is not the operator's
        "other.example.com:443",
        "example.org",  # the wildcard covers names below the domain, not the domain
        "*.example.com:443",
        "plain.example:8080",
        "*.plain.example",
    ],
)
def test_an_entry_outside_the_operators_list_is_named(entry: str) -> None:
    with pytest.raises(ValueError, match="outside the operator's allow-list") as info:
        tokens.narrowed_egress(OPERATOR, [entry])
    assert repr(entry) in str(info.value)


def test_a_bad_entry_says_why() -> None:
    with pytest.raises(ValueError, match="not addresses"):
        tokens.narrowed_egress(OPERATOR, ["10.0.0.1"])


def test_the_gate_sits_between_the_refusals_and_the_allow_rules() -> None:
    conf = egress.squid_conf(
        egress.parse_allow_list(["a.test"]), gate=egress.Gate(key_file="/run/secrets/k")
    ).splitlines()
    access = [line for line in conf if line.startswith("http_access")]
    assert access.index("http_access deny denied_dst") < access.index(
        "http_access deny !token_signed"
    )
    assert access.index("http_access deny !token_allows all") < access.index(
        "http_access allow allow0_host allow0_port"
    )
    assert any("core.egressgate auth /run/secrets/k" in line for line in conf)
    # Without a gate, nothing about it.
    assert "token" not in egress.squid_conf(egress.parse_allow_list(["a.test"]))
