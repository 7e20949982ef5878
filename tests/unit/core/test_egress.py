"""The egress allow-list and the proxy configuration rendered from it (core/egress.py)."""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest

from core import egress
from core.errors import ApiError
from core.settings import Settings, SettingsError
from core.validation import JobValidator
from plugins.builtin.shell import TASK_TYPE as SHELL
from tests.unit.core.test_validation import refusal, task, validator


def test_entries_are_names_wildcards_and_ports() -> None:
    plain, wild, port = egress.parse_allow_list(["API.Example.com", "*.cdn.example", "x.io:8443"])
    assert plain == egress.AllowEntry("api.example.com", False, (80, 443))
    assert plain.matches("api.example.com.", 443) and not plain.matches("api.example.com", 22)
    assert not plain.matches("evil-api.example.com", 443)
    assert wild.matches("a.b.cdn.example", 80) and not wild.matches("cdn.example", 80)
    assert not wild.matches("cdn.example.evil", 80) and not wild.matches("xcdn.example", 80)
    assert port.ports == (8443,) and port.matches("x.io", 8443) and not port.matches("x.io", 443)


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ("127.0.0.1", "not addresses"),
        ("[::1]:80", "not addresses"),
        ("a.*.example", r"leading '\*\.'"),
        ("*.com", "with a dot"),
        ("host:0", "1-65535"),
        ("host:http", "1-65535"),
        ("bad_name.example", "not a valid host name"),
        ("-x.example", "not a valid host name"),
    ],
)
def test_bad_entries_are_refused_naming_them(entry: str, says: str) -> None:
    with pytest.raises(egress.EgressConfigError, match=says) as info:
        egress.parse_allow_list([entry])
    assert repr(entry) in str(info.value)


def test_the_denied_networks_cover_what_the_issue_names() -> None:
    denied = [ipaddress.ip_network(n) for n in egress.DENIED_NETWORKS]
    for address in [
        "127.0.0.1",
        "0.0.0.0",
        "10.1.2.3",
        "172.17.0.1",  # Docker's host gateway
        "192.168.1.1",
        "169.254.169.254",  # metadata
        "100.100.100.200",  # Alibaba's metadata
        "::1",
        "::",
        "fe80::1",
        "fd00:ec2::254",  # AWS's IPv6 metadata (ULA)
        "::ffff:127.0.0.1",
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
    ]:
        ip = ipaddress.ip_address(address)
        assert any(ip in n for n in denied if n.version == ip.version), address
    assert not any(ipaddress.ip_address("93.184.215.14") in n for n in denied if n.version == 4)


def test_the_squid_config_denies_addresses_before_it_allows_names() -> None:
    conf = egress.squid_conf(
        egress.parse_allow_list(["a.example", "*.b.example:8080"]), extra_denied=["198.51.100.1/32"]
    )
    lines = conf.splitlines()
    deny = lines.index("http_access deny denied_dst")
    allows = [i for i, line in enumerate(lines) if line.startswith("http_access allow ")]
    assert allows and deny < min(allows)
    assert lines[-5] == "http_access deny all" and max(allows) < lines.index(lines[-5])
    assert "198.51.100.1/32" in next(x for x in lines if x.startswith("acl denied_dst dst "))
    assert "acl allow0_host dstdomain -n a.example" in lines
    assert "acl allow1_host dstdom_regex -n -i ^([^.]+\\.)+b\\.example$" in lines
    assert "acl allow1_port port 8080" in lines


def test_settings_refuse_egress_without_its_proxy_or_with_a_bad_entry() -> None:
    with pytest.raises(SettingsError, match="HOMERUN_EGRESS_NETWORK"):
        Settings.from_env({"HOMERUN_ALLOW_TASK_NETWORK": "true"})
    with pytest.raises(SettingsError, match=r"HOMERUN_EGRESS_ALLOW: .*'10\.0\.0\.1'"):
        Settings.from_env({"HOMERUN_EGRESS_ALLOW": "ok.example,10.0.0.1"})
    with pytest.raises(SettingsError, match="HOMERUN_EGRESS_DENIED_NETWORKS"):
        Settings.from_env({"HOMERUN_EGRESS_DENIED_NETWORKS": "not-a-net"})
    env = {
        "HOMERUN_ALLOW_TASK_NETWORK": "true",
        "HOMERUN_EGRESS_NETWORK": "homerun_egress",
        "HOMERUN_EGRESS_PROXY_URL": "http://egress-proxy:3128",
        "HOMERUN_EGRESS_ALLOW": "a.example,*.b.example:8443",
        "HOMERUN_EGRESS_DENIED_NETWORKS": "198.51.100.0/24",
    }
    settings = Settings.from_env(env)
    assert settings.egress_allow == ("a.example", "*.b.example:8443")
    assert Settings.from_env(settings.to_env()) == settings


def test_egress_is_refused_at_submission_with_the_reason() -> None:
    body = {"tasks": [task(), task(network="egress")]}
    off = refusal(body)
    assert off.status == 422
    [detail] = off.details
    assert detail.loc == ["body", "tasks", 1, "network"]
    assert "not enabled on this deployment (HOMERUN_ALLOW_TASK_NETWORK=false)" in detail.msg
    enabled = {
        "allow_task_network": True,
        "egress_network": "n",
        "egress_proxy_url": "http://p:3128",
    }
    empty = refusal(body, **enabled)
    assert "allow-list is empty (HOMERUN_EGRESS_ALLOW)" in empty.details[0].msg
    job = validator(**enabled, egress_allow=("a.example",)).validate(body)
    assert [t.network for t in job.tasks] == ["none", "egress"]
    bad = refusal({"tasks": [task(network="bridge")]}, **enabled)
    assert bad.details[0].loc == ["body", "tasks", 0, "network"]


def test_a_task_that_asks_for_nothing_gets_no_network() -> None:
    settings = dataclasses.replace(Settings(), allow_task_network=True, egress_allow=("a.b",))
    job = JobValidator({"shell": SHELL}, settings).validate(
        {"tasks": [{"type": "shell", "payload": {"script": "true"}}]}
    )
    assert job.tasks[0].network == "none"
    with pytest.raises(ApiError):
        JobValidator({"shell": SHELL}, Settings()).validate(
            {"tasks": [{"type": "shell", "payload": {"script": "true"}, "network": "egress"}]}
        )
