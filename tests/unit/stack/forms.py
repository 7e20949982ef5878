"""One neutral form for each rendering of the stack, so they can be compared field by field.

Each reader takes a rendering on its own terms (compose keys and units plus Docker's stack
rules; pulumi-docker inputs as the engine receives them; the Swarm's own service specs) and
returns the same shape: {"networks", "secrets", "configs", "volumes", "services"}.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

from tests.unit.stack.harness import Captured, of_type

NAMESPACE = "com.docker.stack.namespace"


# --------------------------------------------------------------------------- units


def seconds(text: str | None) -> float | None:
    if text is None:
        return None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
    assert match, f"not a duration: {text!r}"
    factor = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[match.group(2)]
    return round(float(match.group(1)) * factor, 6)


def memory_bytes(text: str | None) -> int | None:
    if text is None:
        return None
    match = re.fullmatch(r"(\d+)([KMG]?)", text)
    assert match, f"not a memory size: {text!r}"
    unit = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}[match.group(2)]
    return int(match.group(1)) * unit


def nano(cpus: str | None) -> int | None:
    return None if cpus is None else round(float(cpus) * 1e9)


def unescape(value: str) -> str:
    return value.replace("$$", "$")


# --------------------------------------------------------------------------- compose side


def from_compose(doc: dict[str, Any], stack: str) -> dict[str, Any]:
    networks = doc.get("networks", {})
    secrets = doc.get("secrets", {})
    configs = doc.get("configs", {})
    volumes = doc.get("volumes", {})
    out: dict[str, Any] = {
        "networks": {
            n["name"]: (
                n.get("driver"),
                n.get("attachable", False),
                n.get("internal", False),
                "encrypted" in (n.get("driver_opts") or {}),
                tuple(sorted((n.get("labels") or {}).items())),
            )
            for n in networks.values()
        },
        "secrets": {s["name"]: Path(s["file"]).read_text() for s in secrets.values()},
        "configs": {c["name"]: Path(c["file"]).read_text() for c in configs.values()},
        "volumes": sorted(v["name"] for v in volumes.values()),
        "services": {},
    }
    for key, svc in doc["services"].items():
        deploy = svc.get("deploy", {})
        resources = deploy.get("resources", {})
        limits, reserve = resources.get("limits", {}), resources.get("reservations", {})
        health = svc.get("healthcheck", {})
        restart = deploy.get("restart_policy", {})
        nets = svc.get("networks", {})
        out["services"][f"{stack}_{key}"] = {  # Docker's rule: <stack>_<service key>
            "image": svc.get("image"),
            "args": tuple(unescape(a) for a in svc.get("command", ())),
            "env": {k: unescape(v) for k, v in svc.get("environment", {}).items()},
            "user": svc.get("user"),
            # docker stack deploy adds the service key as an alias on every network.
            "networks": sorted(
                (networks[n]["name"], tuple(sorted({key, *((nets[n] or {}).get("aliases", []))})))
                for n in nets
            ),
            "secrets": sorted(
                (
                    secrets[s["source"]]["name"],
                    s.get("target", s["source"]),
                    s.get("mode"),
                    str(s.get("uid", "0")),
                    str(s.get("gid", "0")),
                )
                for s in svc.get("secrets", ())
            ),
            "configs": sorted(
                (configs[c["source"]]["name"], c.get("target"), c.get("mode"))
                for c in svc.get("configs", ())
            ),
            "mounts": sorted(
                (
                    m["type"],
                    volumes[m["source"]]["name"] if m["type"] == "volume" else m["source"],
                    m["target"],
                    m.get("read_only", False),
                )
                for m in svc.get("volumes", ())
            ),
            "limits": (nano(limits.get("cpus")), memory_bytes(limits.get("memory"))),
            "reservations": (nano(reserve.get("cpus")), memory_bytes(reserve.get("memory"))),
            "mode": ("global", None)
            if deploy.get("mode") == "global"
            else ("replicated", deploy.get("replicas", 1)),
            "endpoint_mode": deploy.get("endpoint_mode", "vip"),
            "ports": sorted(
                (
                    p["target"],
                    p.get("published"),
                    p.get("mode", "ingress"),
                    p.get("protocol", "tcp"),
                )
                for p in svc.get("ports", ())
            ),
            "healthcheck": (
                tuple(unescape(t) for t in health.get("test", ())),
                seconds(health.get("interval")),
                seconds(health.get("timeout")),
                health.get("retries"),
                seconds(health.get("start_period")),
            ),
            "restart": (
                restart.get("condition"),
                seconds(restart.get("delay")),
                restart.get("max_attempts", 0),
                seconds(restart.get("window")),
            ),
            "update": _compose_update(deploy.get("update_config", {})),
            "rollback": _compose_update(deploy.get("rollback_config", {})),
            "constraints": tuple(deploy.get("placement", {}).get("constraints", ())),
            # docker stack deploy labels every service with its namespace and its image.
            "labels": {
                **deploy.get("labels", {}),
                NAMESPACE: stack,
                "com.docker.stack.image": svc.get("image"),
            },
            "stop_grace": seconds(svc.get("stop_grace_period")),
        }
    return out


def _compose_update(u: dict[str, Any]) -> tuple[Any, ...]:
    return (
        u.get("parallelism"),
        seconds(u.get("delay")),
        u.get("order"),
        u.get("failure_action"),
        seconds(u.get("monitor")),
        float(u.get("max_failure_ratio", 0)),
    )


# --------------------------------------------------------------------------- Pulumi side


def plain(value: Any) -> Any:
    if isinstance(value, dict) and "4dabf18193072939515e22adb298388d" in value:
        return value["value"]
    return value


def _decode(data: Any) -> str:
    return base64.b64decode(plain(data)).decode()


def from_pulumi(resources: list[Captured]) -> dict[str, Any]:
    def by_id(typ: str) -> dict[str, dict[str, Any]]:
        # The mocks give every resource the id "<logical name>-id".
        return {f"{r.name}-id": r.inputs for r in of_type(resources, typ)}

    networks = by_id("docker:index/network:Network")
    secrets = by_id("docker:index/secret:Secret")
    configs = by_id("docker:index/serviceConfig:ServiceConfig")
    out: dict[str, Any] = {
        "networks": {
            n["name"]: (
                n.get("driver"),
                n.get("attachable", False),
                n.get("internal", False),
                "encrypted" in (n.get("options") or {}),
                tuple(
                    sorted(
                        (lbl["label"], lbl["value"])
                        for lbl in n.get("labels", ())
                        if lbl["label"] != NAMESPACE
                    )
                ),
            )
            for n in networks.values()
        },
        "secrets": {s["name"]: _decode(s["data"]) for s in secrets.values()},
        "configs": {c["name"]: _decode(c["data"]) for c in configs.values()},
        "volumes": sorted(
            r.inputs["name"] for r in of_type(resources, "docker:index/volume:Volume")
        ),
        "services": {},
    }
    for r in of_type(resources, "docker:index/service:Service"):
        svc = r.inputs
        task = svc["taskSpec"]
        spec = task["containerSpec"]
        limits = task.get("resources", {}).get("limits", {})
        reserve = task.get("resources", {}).get("reservation", {})
        health = spec.get("healthcheck", {})
        restart = task.get("restartPolicy", {})
        for ref in spec.get("secrets", ()):
            assert secrets[ref["secretId"]]["name"] == ref["secretName"]
        for ref in spec.get("configs", ()):
            assert configs[ref["configId"]]["name"] == ref["configName"]
        replicated = svc.get("mode", {}).get("replicated")
        out["services"][svc["name"]] = {
            "image": spec.get("image"),
            "args": tuple(spec.get("args", ())),
            "env": dict(spec.get("env", {})),
            "user": spec.get("user"),
            "networks": sorted(
                (networks[n["id"]]["name"], tuple(sorted(n.get("aliases", ()))))
                for n in task.get("networksAdvanceds", ())
            ),
            "secrets": sorted(
                (
                    s["secretName"],
                    s["fileName"],
                    s.get("fileMode"),
                    s.get("fileUid", "0"),
                    s.get("fileGid", "0"),
                )
                for s in spec.get("secrets", ())
            ),
            "configs": sorted(
                (c["configName"], c["fileName"], c.get("fileMode")) for c in spec.get("configs", ())
            ),
            "mounts": sorted(
                (m["type"], m.get("source"), m["target"], m.get("readOnly", False))
                for m in spec.get("mounts", ())
            ),
            "limits": (limits.get("nanoCpus"), limits.get("memoryBytes")),
            "reservations": (reserve.get("nanoCpus"), reserve.get("memoryBytes")),
            "mode": ("global", None)
            if svc.get("mode", {}).get("global")
            else ("replicated", replicated.get("replicas", 1) if replicated else 1),
            "endpoint_mode": svc.get("endpointSpec", {}).get("mode", "vip"),
            "ports": sorted(
                (
                    p["targetPort"],
                    p.get("publishedPort"),
                    p.get("publishMode", "ingress"),
                    p.get("protocol", "tcp"),
                )
                for p in svc.get("endpointSpec", {}).get("ports", ())
            ),
            "healthcheck": (
                tuple(health.get("tests", ())),
                seconds(health.get("interval")),
                seconds(health.get("timeout")),
                health.get("retries"),
                seconds(health.get("startPeriod")),
            ),
            "restart": (
                restart.get("condition"),
                seconds(restart.get("delay")),
                restart.get("maxAttempts", 0),
                seconds(restart.get("window")),
            ),
            "update": _pulumi_update(svc.get("updateConfig", {})),
            "rollback": _pulumi_update(svc.get("rollbackConfig", {})),
            "constraints": tuple(task.get("placement", {}).get("constraints", ())),
            "labels": {lbl["label"]: lbl["value"] for lbl in svc.get("labels", ())},
            "stop_grace": seconds(spec.get("stopGracePeriod")),
        }
    return out


def _pulumi_update(u: dict[str, Any]) -> tuple[Any, ...]:
    return (
        u.get("parallelism"),
        seconds(u.get("delay")),
        u.get("order"),
        u.get("failureAction"),
        seconds(u.get("monitor")),
        float(u.get("maxFailureRatio", 0)),
    )
