"""Validating a job submission completely before anything is written.

Two layers. The envelope (field names, types, lengths, ranges) is one JSON Schema,
``JobSchemas.submission``, the very schema ``/openapi.json`` publishes, so the documented
contract and the enforced one cannot drift. Then what a schema cannot say: the task type
exists, the payload fits its size limit and its type's own schema, the plugin can build a
container spec from it, task names are unique, and dependencies name real tasks and form
no cycle. Every problem found is reported, each with the path (``loc``) to its field.
"""

from __future__ import annotations

import base64
import binascii
import graphlib
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jsonschema

from core import metrics, runnergroups
from core.errors import ApiError, Detail
from core.models import PRIORITY_BOUND
from core.settings import Settings, env_name
from core.transitions import MapSpec, NewJob, NewTask
from plugins.tasktypes import FILES_DIR, MAP_INPUT, PayloadError, TaskContext, TaskType

__all__ = [
    "MAX_TASK_SECRETS",
    "SECRET_NAME_MESSAGE",
    "SECRET_NAME_PATTERN",
    "VALIDATOR_SETTINGS",
    "JobSchemas",
    "JobValidator",
    "find_cycle",
    "parse_json",
    "refuse_closed_egress",
    "request_hash",
]

log = logging.getLogger(__name__)

MAX_LABELS = 32
MAX_DETAILS = 50  # a submission with a thousand mistakes gets the first fifty

JOB_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 _.,:/@+=-]*$"
# Task names become file names inside downstream containers (/homerun/inputs/<name>.json).
TASK_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
# No ':' in a key: the list filter is ``label=key:value``.
LABEL_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_./-]*$"
CALLBACK_URL_PATTERN = r"^https?://[^\s/?#@]+(:[0-9]+)?([/?#]\S*)?$"
TASK_TYPE_PATTERN = r"^[a-z][a-z0-9_.-]*$"
# Secret names become file names in the task's container (/run/secrets/<name>).
SECRET_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
SECRET_NAME_MESSAGE = (
    "must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit"
)
MAX_TASK_SECRETS = 32
# A submitted file's name becomes a file name in the container (/homerun/files/<name>).
FILE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
BASE64_PATTERN = r"^[A-Za-z0-9+/]*={0,2}$"

# Every setting a job body's validation depends on: what ``JobValidator`` reads, and the
# plugin set it is built from (``disabled_plugins``). Each process that validates job
# bodies (the API, the notifier's scheduler for every tick) must hold the same values: the
# stack gives both the same ones (stack/topology.py, ``_validator_env``), and
# tests/unit/core/test_validator_settings.py holds the validator to this list.
VALIDATOR_SETTINGS = frozenset(
    {
        "allow_task_network",
        "allowed_images",
        "default_max_attempts",
        "disabled_plugins",
        "egress_allow",
        "max_map_items",
        "max_payload_bytes",
        "max_task_attempts",
        "max_task_cpus",
        "max_task_files",
        "max_task_memory_mb",
        "max_task_priority",
        "max_task_timeout_seconds",
        "max_tasks_per_job",
        "runner_groups",
    }
)

# A placeholder id for the trial build at submission: the real ids do not exist yet.
_TRIAL_ID = "00000000-0000-0000-0000-000000000000"

# What a task's "network" may say (core/egress.py is what "egress" means).
NETWORKS = ("none", "egress")


def _string(pattern: str, max_length: int, message: str, description: str) -> dict[str, Any]:
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": max_length,
        "pattern": pattern,
        "description": description,
        # Read by _message(): a sentence for people instead of the raw regex.
        "x-message": message,
    }


def _capped(
    minimum: int,
    maximum: int,
    setting: str,
    description: str,
    *,
    null: bool = False,
    symmetric: bool = False,
) -> dict[str, Any]:
    """An integer field whose maximum (``symmetric``: its minimum too) a setting sets."""
    limits = {"maximum": env_name(setting)}
    if symmetric:
        limits["minimum"] = env_name(setting)
    return {
        "type": ["integer", "null"] if null else "integer",
        "minimum": minimum,
        "maximum": maximum,
        "description": f"{description} Range on this deployment: {minimum}..{maximum}.",
        # Read by _message(): a refusal names the limit and the setting that sets it.
        "x-limits": limits,
    }


def _task_schema(settings: Settings) -> dict[str, Any]:
    max_tasks = settings.max_tasks_per_job
    priority = min(settings.max_task_priority, PRIORITY_BOUND)
    task_name = _string(
        TASK_NAME_PATTERN,
        64,
        "must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit",
        "Unique within the job; defaults to task-<position> (1-based).",
    )
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["type", "payload"],
        "properties": {
            "name": task_name,
            "type": {
                "type": "string",
                "minLength": 1,
                "maxLength": 64,
                "description": "A registered task type (GET /v1/task-types).",
            },
            "payload": {
                "type": "object",
                "description": "Validated against the task type's payload_schema.",
            },
            "depends_on": {
                "type": "array",
                "items": {**task_name, "description": "Name of a task of this job."},
                "uniqueItems": True,
                "maxItems": max_tasks,
                "description": "Tasks that must succeed before this one is queued.",
            },
            "timeout_s": _capped(
                1,
                settings.max_task_timeout_seconds,
                "max_task_timeout_seconds",
                "Kill an attempt after this many seconds; default: the type's.",
                null=True,
            ),
            "max_attempts": _capped(
                1,
                settings.max_task_attempts,
                "max_task_attempts",
                "Attempts the task's own failures may use up.",
            ),
            "priority": _capped(
                -priority,
                priority,
                "max_task_priority",
                "Higher runs first among this token's tasks (never ahead of another"
                " token's: claims rotate between tokens); default 0.",
                symmetric=True,
            ),
            "runs_on": {
                "type": "array",
                "items": {
                    **_string(
                        runnergroups.LABEL_PATTERN,
                        63,
                        "must be 1-63 lowercase letters, digits, '_', '.' or '-', starting"
                        " with a letter or digit",
                        "A runner label.",
                    )
                },
                "uniqueItems": True,
                "maxItems": runnergroups.MAX_LABELS,
                "description": "Labels a runner must all have to take this task (a runner"
                ' group\'s, e.g. ["bigdisk"]); default: any runner.',
            },
            "resources": _resources_schema(settings),
            "network": {
                "type": "string",
                "enum": list(NETWORKS),
                "description": "none (the default): loopback only. egress: HTTP and HTTPS"
                " through the operator's egress proxy, to the hosts on its allow-list only;"
                " refused unless the deployment enables it (HOMERUN_ALLOW_TASK_NETWORK).",
            },
            "secrets": {
                "type": "array",
                "items": _string(
                    SECRET_NAME_PATTERN,
                    64,
                    SECRET_NAME_MESSAGE,
                    "A secret of this token (PUT /v1/secrets/{name}).",
                ),
                "uniqueItems": True,
                "maxItems": MAX_TASK_SECRETS,
                "description": "Secrets the task reads, each at /run/secrets/<name> (a file only"
                " the task's user can read); unknown names are refused.",
            },
            "files": {
                "type": "object",
                "maxProperties": settings.max_task_files,
                "propertyNames": {"pattern": FILE_NAME_PATTERN, "maxLength": 128},
                "additionalProperties": {
                    "type": "string",
                    "pattern": BASE64_PATTERN,
                    "contentEncoding": "base64",
                },
                "description": f"Small input files, name -> base64 of the bytes, placed"
                f" read-only at {FILES_DIR}/<name>; within the body limit, at most"
                f" {settings.max_task_files} per task.",
                "x-limits": {"maxProperties": env_name("max_task_files")},
            },
            "map": _map_schema(settings, task_name),
        },
    }


# A container below this cannot start an interpreter, and tmpfs pages count against it.
MIN_TASK_MEMORY_MB = 16


def _resources_schema(settings: Settings) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "description": "The task's container size; what it leaves out is its task type's.",
        "properties": {
            "cpus": {
                "type": "number",
                "exclusiveMinimum": 0,
                "maximum": settings.max_task_cpus,
                "description": "CPUs (fractions allowed; Docker's NanoCpus)."
                f" At most {settings.max_task_cpus} on this deployment.",
                "x-limits": {"maximum": env_name("max_task_cpus")},
            },
            "memory_mb": {
                "type": "integer",
                "minimum": MIN_TASK_MEMORY_MB,
                "maximum": settings.max_task_memory_mb,
                "description": "Memory in MiB, without swap (Docker's Memory)."
                f" Range on this deployment: {MIN_TASK_MEMORY_MB}..{settings.max_task_memory_mb}.",
                "x-limits": {"maximum": env_name("max_task_memory_mb")},
            },
        },
    }


def _map_schema(settings: Settings, task_name: dict[str, Any]) -> dict[str, Any]:
    """A map task: one instance per item, of ``over``'s output or of ``over_items``."""
    most = settings.max_map_items
    return {
        "type": "object",
        "additionalProperties": False,
        "description": "Run this task once per item of a list (exactly one of over and"
        " over_items). Each instance reads /homerun/inputs/_map.json, {index, item};"
        " dependents receive the instances' outputs as one list, in item order.",
        "properties": {
            "over": {
                **task_name,
                "description": "A task of this job whose output is the list (it becomes a"
                f" dependency). A list longer than {most} fails the task (failure kind map).",
            },
            "over_items": {
                "type": "array",
                "maxItems": most,
                "description": f"The list itself; at most {most} items on this deployment.",
                "x-limits": {"maxItems": env_name("max_map_items")},
            },
            "max_parallel": _capped(
                1, most, "max_map_items", "How many instances run at once; default: no cap."
            ),
        },
    }


def _map_dependencies(task: Mapping[str, Any]) -> list[str]:
    """``depends_on``, and a map's ``over`` task if it is not named there already."""
    depends_on = list(task.get("depends_on", ()))
    over = task.get("map", {}).get("over")
    return depends_on if over is None or over in depends_on else [*depends_on, over]


@dataclass(frozen=True)
class JobSchemas:
    """The submission's JSON Schemas, with the limits of one deployment filled in."""

    task: dict[str, Any]
    submission: dict[str, Any]

    @classmethod
    def for_settings(cls, settings: Settings) -> JobSchemas:
        task = _task_schema(settings)
        submission = {
            "type": "object",
            "additionalProperties": False,
            "required": ["tasks"],
            "properties": {
                "name": _string(
                    JOB_NAME_PATTERN,
                    200,
                    "must be 1-200 letters, digits, spaces or _.,:/@+=-, starting with a"
                    " letter or digit",
                    "A name for people; not unique.",
                ),
                "labels": {
                    "type": "object",
                    "maxProperties": MAX_LABELS,
                    "propertyNames": {
                        **_string(
                            LABEL_KEY_PATTERN,
                            63,
                            "label keys must be 1-63 letters, digits, '_', '.', '/' or '-',"
                            " starting with a letter or digit",
                            "Label key.",
                        )
                    },
                    "additionalProperties": {"type": "string", "maxLength": 256},
                    "description": "String labels to filter by (GET /v1/jobs?label=k:v).",
                },
                "callback_url": {
                    "type": "string",
                    "maxLength": 2048,
                    "pattern": CALLBACK_URL_PATTERN,
                    "x-message": "must be an absolute http:// or https:// URL",
                    "description": "Receives the job's terminal state (signed webhook).",
                },
                "keep": {
                    "type": "boolean",
                    "description": "Never delete this job when it expires (retention);"
                    " default false. PATCH /v1/jobs/{id} changes it.",
                },
                "tasks": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": settings.max_tasks_per_job,
                    "items": task,
                },
            },
        }
        return cls(task=task, submission=submission)


def _number(value: Any, kind: type[float] | type[int]) -> Any:
    return None if value is None else kind(value)


def parse_json(raw: bytes) -> Any:
    """Parse a request body; ``ApiError`` 400 naming where the JSON breaks."""

    def refuse_constant(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(
            400,
            "invalid_json",
            f"request body is not UTF-8 (byte {exc.start})",
            [Detail(["body"], "not valid UTF-8")],
        ) from None
    try:
        return json.loads(text, parse_constant=refuse_constant)
    except json.JSONDecodeError as exc:
        msg = f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    except (ValueError, RecursionError) as exc:
        msg = str(exc) if isinstance(exc, ValueError) else "nested too deeply"
    raise ApiError(
        400, "invalid_json", f"request body is not valid JSON: {msg}", [Detail(["body"], msg)]
    )


def request_hash(body: Any) -> str:
    """Fingerprint of a submission for idempotency: equal JSON, equal hash."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def _message(error: jsonschema.ValidationError) -> str:
    custom = error.schema.get("x-message") if isinstance(error.schema, Mapping) else None
    if custom and error.validator in {"pattern", "minLength", "maxLength"}:
        return f"{custom} (got {_short(error.instance)})"
    limits = error.schema.get("x-limits") if isinstance(error.schema, Mapping) else None
    setting = limits.get(str(error.validator)) if isinstance(limits, Mapping) else None
    if setting and error.validator == "maxItems":
        return (
            f"must have at most {error.validator_value} items on this deployment"
            f" ({setting}; got {len(error.instance) if isinstance(error.instance, list) else 0})"
        )
    if setting:
        bound = "at most" if error.validator == "maximum" else "at least"
        return (
            f"must be {bound} {error.validator_value} on this deployment"
            f" ({setting}; got {_short(error.instance)})"
        )
    return error.message


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


def _schema_details(
    validator: jsonschema.protocols.Validator, instance: Any, prefix: Sequence[str | int]
) -> list[Detail]:
    errors = sorted(
        validator.iter_errors(instance), key=lambda e: [str(p) for p in e.absolute_path]
    )
    return [Detail([*prefix, *e.absolute_path], _message(e)) for e in errors[:MAX_DETAILS]]


def _nul_details(value: Any, loc: list[str | int]) -> list[Detail]:
    """Postgres text and jsonb cannot hold U+0000: refuse it wherever it hides."""
    found: list[Detail] = []
    stack: list[tuple[Any, list[str | int]]] = [(value, loc)]
    while stack and len(found) < MAX_DETAILS:
        item, at = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                found.append(
                    Detail(at, "contains a NUL character (\\u0000), which cannot be stored")
                )
        elif isinstance(item, dict):
            for key, child in item.items():
                if "\x00" in key:
                    found.append(Detail(at, "has a key containing a NUL character (\\u0000)"))
                stack.append((child, [*at, key]))
        elif isinstance(item, list):
            stack.extend((child, [*at, i]) for i, child in enumerate(item))
    return sorted(found, key=lambda d: [str(p) for p in d.loc])


def _files_details(at: list[str | int], files: Mapping[str, str]) -> list[Detail]:
    """A file whose text the pattern lets through but which is not base64 (its length)."""
    found = []
    for name, text in files.items():
        try:
            base64.b64decode(text, validate=True)
        except binascii.Error as exc:
            found.append(Detail([*at, "files", name], f"is not base64: {exc}"))
    return found


def find_cycle(edges: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A dependency cycle as a path ``[a, b, ..., a]`` (a depends on b ...), or None.

    ``graphlib`` finds it. Its sorter follows edges from a node to the nodes that wait on
    it, so each task is given as waiting on the tasks that depend on it: the path it reports
    then reads along ``depends_on``, starting from the first task (in ``edges`` order) whose
    dependencies lead back to itself.
    """
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for task in edges:
        sorter.add(task)
    for task, dependencies in edges.items():
        for dependency in dependencies:
            sorter.add(dependency, task)
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        return list(exc.args[1])
    return None


class JobValidator:
    """Turns a parsed body into a ``NewJob``, or raises ``ApiError`` 422 listing every problem."""

    def __init__(self, task_types: Mapping[str, TaskType], settings: Settings) -> None:
        self.task_types = task_types
        self.settings = settings
        self.schemas = JobSchemas.for_settings(settings)
        self._groups = runnergroups.parse_groups(settings.runner_groups)
        self._envelope = jsonschema.Draft202012Validator(self.schemas.submission)
        self._payload_validators = {
            name: jsonschema.Draft202012Validator(dict(tt.payload_schema))
            for name, tt in task_types.items()
        }

    def validate(self, body: Any) -> NewJob:
        details = _schema_details(self._envelope, body, ["body"])
        if not details:
            details = _nul_details(body, ["body"])
        if details:
            raise self._invalid(details)
        tasks: list[dict[str, Any]] = body["tasks"]
        names = self._task_names(tasks)
        details += self._name_details(tasks, names)
        for i, task in enumerate(tasks):
            details += self._task_details(i, task, names[i])
        if not details:
            details += self._dependency_details(tasks, names)
        if details:
            raise self._invalid(details)
        return NewJob(
            name=body.get("name"),
            labels=dict(body.get("labels", {})),
            callback_url=body.get("callback_url"),
            keep=bool(body.get("keep", False)),
            tasks=[
                NewTask(
                    name=names[i],
                    type=task["type"],
                    payload=task["payload"],
                    depends_on=_map_dependencies(task),
                    map=self._map(task),
                    timeout_s=int(task["timeout_s"]) if task.get("timeout_s") is not None else None,
                    max_attempts=int(task.get("max_attempts", self.settings.default_max_attempts)),
                    priority=int(task.get("priority", 0)),
                    runs_on=sorted(task.get("runs_on", ())),
                    cpus=_number(task.get("resources", {}).get("cpus"), float),
                    memory_mb=_number(task.get("resources", {}).get("memory_mb"), int),
                    network=str(task.get("network", "none")),
                    secrets=tuple(task.get("secrets", ())),
                    files=dict(task.get("files", {})),
                )
                for i, task in enumerate(tasks)
            ],
        )

    def _map(self, task: Mapping[str, Any]) -> MapSpec | None:
        spec = task.get("map")
        if spec is None:
            return None
        return MapSpec(
            over=spec.get("over"),
            items=spec.get("over_items"),
            max_parallel=spec.get("max_parallel"),
            max_items=self.settings.max_map_items,
        )

    @staticmethod
    def _invalid(details: list[Detail]) -> ApiError:
        # In document order, so the message names the first problem a reader would meet.
        details = sorted(
            details, key=lambda d: [(0, p, "") if isinstance(p, int) else (1, 0, p) for p in d.loc]
        )
        first = details[0]
        where = ".".join(str(p) for p in first.loc)
        others = len(details) - 1
        more = f" (and {others} more problem{'s' if others > 1 else ''})" if others else ""
        return ApiError(
            422, "validation_error", f"{where}: {first.msg}{more}", details[:MAX_DETAILS]
        )

    @staticmethod
    def _task_names(tasks: Sequence[Mapping[str, Any]]) -> list[str]:
        """Explicit names, and ``task-<n>`` (1-based) for the rest, avoiding taken names."""
        taken = {t["name"] for t in tasks if "name" in t}
        names = []
        for i, task in enumerate(tasks):
            if "name" in task:
                names.append(task["name"])
                continue
            candidate, n = f"task-{i + 1}", 1
            while candidate in taken:
                n += 1
                candidate = f"task-{i + 1}-{n}"
            taken.add(candidate)
            names.append(candidate)
        return names

    @staticmethod
    def _name_details(tasks: Sequence[Mapping[str, Any]], names: Sequence[str]) -> list[Detail]:
        details = []
        first_at: dict[str, int] = {}
        for i, name in enumerate(names):
            if "\n" in name:  # a JSON Schema '$' also matches before a final newline
                details.append(Detail(["body", "tasks", i, "name"], "must not contain a newline"))
            if name in first_at:
                details.append(
                    Detail(
                        ["body", "tasks", i, "name"],
                        f"duplicate task name {name!r} (also used by tasks[{first_at[name]}])",
                    )
                )
            first_at.setdefault(name, i)
        return details

    def _task_details(self, i: int, task: Mapping[str, Any], name: str) -> list[Detail]:
        at: list[str | int] = ["body", "tasks", i]
        task_type = self.task_types.get(task["type"])
        if task_type is None:
            known = ", ".join(sorted(self.task_types)) or "none"
            return [Detail([*at, "type"], f"unknown task type {task['type']!r} (known: {known})")]
        refused = self._network_refusal(task)
        if refused is not None:
            return [Detail([*at, "network"], refused)]
        payload = task["payload"]
        size = len(
            json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode(
                "utf-8", "surrogatepass"
            )
        )
        if size > self.settings.max_payload_bytes:
            return [
                Detail(
                    [*at, "payload"],
                    f"payload is {size} bytes; the limit is {self.settings.max_payload_bytes}",
                )
            ]
        details = _schema_details(
            self._payload_validators[task_type.name], payload, [*at, "payload"]
        )
        details += self._runs_on_details(at, task.get("runs_on", ()))
        details += _files_details(at, task.get("files", {}))
        if details:
            return details
        if "map" in task and ("over" in task["map"]) == ("over_items" in task["map"]):
            return [Detail([*at, "map"], "give exactly one of over and over_items")]
        inputs: dict[str, Any] = {dep: None for dep in _map_dependencies(task)}
        if "map" in task:
            inputs[MAP_INPUT] = {"index": 0, "item": None}
        context = TaskContext(
            job_id=_TRIAL_ID,
            task_id=_TRIAL_ID,
            task_name=name,
            attempt=1,
            inputs=inputs,
            allowed_images=self.settings.allowed_images,
        )
        try:
            task_type.build_spec(payload, context)
        except PayloadError as exc:
            return [Detail([*at, "payload", *exc.loc], exc.message)]
        except Exception as exc:
            # A plugin bug must not become a 500 for every submission of that type; the
            # traceback goes to the log and the metric, the client gets a clear refusal.
            metrics.PLUGIN_ERRORS.labels(task_type.name).inc()
            log.exception("task type %r failed to build a spec at submission", task_type.name)
            return [
                Detail(
                    [*at, "payload"],
                    f"task type {task_type.name!r} could not build a container spec from this"
                    f" payload ({type(exc).__name__}: {exc})",
                )
            ]
        return []

    def _runs_on_details(self, at: list[str | int], runs_on: Sequence[str]) -> list[Detail]:
        """A task no configured runner group can ever take is refused now, not left queued."""
        if any(runnergroups.fits(runs_on, g.labels) for g in self._groups):
            return []
        groups = "; ".join(str(g) for g in self._groups) or "none"
        return [
            Detail(
                [*at, "runs_on"],
                f"no runner group of this deployment has all of the labels"
                f" [{', '.join(sorted(runs_on))}] (groups: {groups};"
                f" {env_name('runner_groups')})",
            )
        ]

    def _network_refusal(self, task: Mapping[str, Any]) -> str | None:
        """Why this deployment cannot give the task the network it asks for, if it cannot."""
        if task.get("network", "none") != "egress":
            return None
        if not self.settings.allow_task_network:
            return (
                "network egress is not enabled on this deployment"
                f" ({env_name('allow_task_network')}=false): tasks get no network"
            )
        if not self.settings.egress_allow:
            return (
                "network egress is enabled, but the operator's allow-list is empty"
                f" ({env_name('egress_allow')}): such a task could reach no host"
            )
        return None

    @staticmethod
    def _dependency_details(
        tasks: Sequence[Mapping[str, Any]], names: Sequence[str]
    ) -> list[Detail]:
        known = set(names)
        details = []
        for i, task in enumerate(tasks):
            for j, dep in enumerate(task.get("depends_on", ())):
                if dep not in known:
                    details.append(
                        Detail(
                            ["body", "tasks", i, "depends_on", j],
                            f"unknown task {dep!r}: no task of this job has that name"
                            f" (tasks: {', '.join(names)})",
                        )
                    )
            over = task.get("map", {}).get("over")
            if over is not None and over not in known:
                details.append(
                    Detail(
                        ["body", "tasks", i, "map", "over"],
                        f"unknown task {over!r}: no task of this job has that name"
                        f" (tasks: {', '.join(names)})",
                    )
                )
        if details:
            return details
        edges = {names[i]: _map_dependencies(task) for i, task in enumerate(tasks)}
        cycle = find_cycle(edges)
        if cycle is None:
            return []
        where = names.index(cycle[0])
        return [
            Detail(
                ["body", "tasks", where, "depends_on"],
                "dependency cycle: " + " -> ".join(cycle),
            )
        ]


def refuse_closed_egress(
    job: NewJob, token_allow: Sequence[str] | None, at: Sequence[str] = ("body",)
) -> None:
    """422 for each task asking ``"network": "egress"`` of a token whose own egress list is
    empty (``homerun token egress TOKEN none``): the proxy would refuse its every request.
    ``at`` is where the job sits in the request (a schedule's is ``body.job``)."""
    if token_allow is None or token_allow:
        return
    details = [
        Detail(
            [*at, "tasks", i, "network"],
            "this token may not use network egress: its egress allow-list is empty"
            " (homerun token egress)",
        )
        for i, task in enumerate(job.tasks)
        if task.network == "egress"
    ]
    if details:
        where = ".".join(str(p) for p in details[0].loc)
        raise ApiError(422, "validation_error", f"{where}: {details[0].msg}", details)
