"""Reading a TrainingJob spec: YAML with line numbers, schema validation, `--set` and per-cluster overrides.

Order (docs/job-spec.md, "Overrides"): the file is validated as written; `--set clusters.<c>...` edits the
file's overrides; the `clusters.<cluster>` override is merged over the top level; every other `--set` is
applied last, so the command line always wins. Every error is a UsageError whose one-line message names
where the bad value came from (`3dgan.yaml:7: resources.gpus: ...` or `--set resources.gpus: ...`).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

import yaml

from mlctl.errors import UsageError
from mlctl.jobs import schema as S
from mlctl.jobs.schema import Path, SchemaError, format_path

MAX_BYTES = 1_000_000
_MAX_NODES = 100_000  # aliases can expand a tiny file into billions of nodes
_MAX_DEPTH = 40
# Fields whose mappings merge key by key under an override; every other field is replaced whole.
_MERGED = ("resources", "env", "simulate", "output")
# Set by mlctl from `output`; a user value would be silently shadowed, or leak a credential into the spec.
RESERVED_ENV = ("MLCTL_OUTPUT_URL", "OUTPUT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_CA_BUNDLE")


# The spec's records are NamedTuples, not dataclasses: `mlctl train SPEC` loads this module on every
# submission, and dataclasses (with inspect) and their generated methods cost it about 20 ms (docs/cli.md).
class Resources(NamedTuple):
    gpus: int
    cpu: str
    memory: str
    pool: str


class DataMount(NamedTuple):
    name: str
    mount_path: str
    host_path: str | None = None
    pvc: str | None = None


class Output(NamedTuple):
    url: str
    secret: str = S.DEFAULT_SECRET


class Simulate(NamedTuple):
    run_seconds: int | None = None
    exit_code: int | None = None
    fail_replica: str | None = None


NO_ENV: Mapping[str, str] = MappingProxyType({})


class Spec(NamedTuple):
    """The effective spec for one cluster: overrides applied, defaults filled in."""

    name: str
    framework: str
    image: str
    resources: Resources
    workers: int = 1
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = NO_ENV
    data: tuple[DataMount, ...] = ()
    output: Output | None = None
    restart_policy: str = "ExitCode"
    backoff_limit: int = 3
    ttl_seconds_after_finished: int = 86400
    active_deadline_seconds: int | None = None
    simulate: Simulate | None = None
    cluster: str | None = None  # the cluster whose override was applied
    source: str = ""  # the file name, for messages

    def replicas(self) -> dict[str, int]:
        """Replica type -> count: workers N is 1 Chief (TF) or Master (PyTorch) + N-1 Workers."""
        lead = "Chief" if self.framework == "tensorflow" else "Master"
        return {lead: 1, "Worker": self.workers - 1} if self.workers > 1 else {lead: 1}

    def to_dict(self) -> dict[str, Any]:
        """The effective spec in the file's own format (no clusters:), as `mlctl train render` shows it."""
        doc: dict[str, Any] = {"apiVersion": S.API_VERSION, "kind": S.KIND, "name": self.name,
                               "framework": self.framework, "image": self.image}
        if self.command:
            doc["command"] = list(self.command)
        if self.args:
            doc["args"] = list(self.args)
        if self.env:
            doc["env"] = dict(self.env)
        doc["workers"] = self.workers
        doc["resources"] = {"gpus": self.resources.gpus, "cpu": self.resources.cpu,
                            "memory": self.resources.memory, "pool": self.resources.pool}
        if self.data:
            doc["data"] = [{"name": d.name, **({"hostPath": d.host_path} if d.host_path else {"pvc": d.pvc}),
                            "mountPath": d.mount_path} for d in self.data]
        if self.output:
            doc["output"] = {"url": self.output.url, "secret": self.output.secret}
        doc["restartPolicy"] = self.restart_policy
        doc["backoffLimit"] = self.backoff_limit
        doc["ttlSecondsAfterFinished"] = self.ttl_seconds_after_finished
        if self.active_deadline_seconds is not None:
            doc["activeDeadlineSeconds"] = self.active_deadline_seconds
        if self.simulate:
            sim = {"runSeconds": self.simulate.run_seconds, "exitCode": self.simulate.exit_code,
                   "failReplica": self.simulate.fail_replica}
            doc["simulate"] = {k: v for k, v in sim.items() if v is not None}
        return doc

    @property
    def spec_hash(self) -> str:
        """sha256 of the effective spec, 16 hex digits: equal specs give equal hashes."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        import hashlib

        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


# ---- YAML with line numbers ----------------------------------------------------------------------------

class _Parsed:
    __slots__ = ("data", "lines", "raw")

    def __init__(self, data: Any, lines: dict[Path, int], raw: dict[Path, str]):
        self.data = data
        self.lines = lines  # path -> 1-based line of its key (or list item)
        self.raw = raw  # path -> text of a plain scalar as written (so `cpu: 0.5` can stay "0.5")


def _yaml_problem(e: Exception) -> tuple[int | None, str]:
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    problem = getattr(e, "problem", None) or getattr(e, "context", None) or str(e).splitlines()[0]
    problem = " ".join(str(problem).split())[:120]
    return (mark.line + 1 if mark else None), problem


def _parse_yaml(text: str | bytes, where: str) -> _Parsed:
    """Compose one YAML document and build plain data plus a path -> line map; UsageError on anything odd."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise UsageError(f"{where}: not UTF-8 text (byte {e.start})") from None
    if len(text) > MAX_BYTES:
        raise UsageError(f"{where}: too large for a job spec ({len(text)} characters)")
    loader = None
    try:
        try:
            loader = yaml.SafeLoader(text)
            node = loader.get_single_node()
            parsed = _Parsed(None, {(): 1}, {})
            if node is not None:
                parsed.lines[()] = node.start_mark.line + 1
                counter = [0]
                parsed.data = _walk(loader, node, (), parsed, counter, where)
            return parsed
        except yaml.YAMLError as e:
            line, problem = _yaml_problem(e)
            raise UsageError(f"{where}:{line}: not valid YAML: {problem}" if line
                             else f"{where}: not valid YAML: {problem}") from None
        except RecursionError:
            raise UsageError(f"{where}: nested too deeply to be a job spec") from None
        except (ValueError, TypeError, OverflowError) as e:  # int("9"*5000), datetime(2001, 13, 45)
            problem = "a number is too long" if "digits" in str(e) else " ".join(str(e).split())[:120]
            raise UsageError(f"{where}: not a valid YAML value: {problem}") from None
    finally:
        if loader is not None:
            loader.dispose()


def _walk(loader: yaml.SafeLoader, node: yaml.Node, path: Path, parsed: _Parsed, counter: list[int],
          where: str) -> Any:
    counter[0] += 1
    if counter[0] > _MAX_NODES or len(path) > _MAX_DEPTH:
        raise UsageError(f"{where}:{node.start_mark.line + 1}: too large or too deeply nested for a job spec")
    if isinstance(node, yaml.CollectionNode) and node.tag not in ("tag:yaml.org,2002:map",
                                                                   "tag:yaml.org,2002:seq"):
        raise UsageError(f"{where}:{node.start_mark.line + 1}: not valid YAML: unsupported tag {node.tag[:60]}")
    if isinstance(node, yaml.MappingNode):
        own: set[str] = set()
        for key_node, _ in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                raise UsageError(f"{where}:{line}: {format_path(path) or 'top level'}: keys must be plain names")
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            if key_node.value in own:
                raise UsageError(f"{where}:{line}: {format_path(path + (key_node.value,))}: duplicate key")
            own.add(key_node.value)
        # YAML merge keys (<<: *defaults): merged pairs come first, so the mapping's own keys win.
        loader.flatten_mapping(node)
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise UsageError(f"{where}:{key_node.start_mark.line + 1}: {format_path(path) or 'top level'}: "
                                 "keys must be plain names")
            key = key_node.value  # as written: `on:` is "on", not True
            out.pop(key, None)  # keep document order of the winning key
            parsed.lines[path + (key,)] = key_node.start_mark.line + 1
            out[key] = _walk(loader, value_node, path + (key,), parsed, counter, where)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            parsed.lines[path + (i,)] = item.start_mark.line + 1
            items.append(_walk(loader, item, path + (i,), parsed, counter, where))
        return items
    value = loader.construct_object(node, deep=True)
    if node.style is None and value is not None:
        parsed.raw[path] = node.value
    return value


def _takes_text(s: dict | None) -> bool:
    kinds = (s or {}).get("type")
    return kinds == "string" or (isinstance(kinds, list) and "string" in kinds)


def _textify(value: Any, s: dict | None, path: Path, raw: dict[Path, str]) -> Any:
    """Where the schema wants text, plain scalars become the text as written (`OMP_NUM_THREADS: 4`)."""
    if s is None:
        return value
    if "oneOf" in s and isinstance(value, dict):
        s = next((b for b in s["oneOf"] if b.get("type") == "object"), s)
    if isinstance(value, dict):
        props = s.get("properties", {})
        extra = s.get("additionalProperties")
        return {k: _textify(v, props.get(k, extra if isinstance(extra, dict) else None), path + (k,), raw)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_textify(v, s.get("items"), path + (i,), raw) for i, v in enumerate(value)]
    if _takes_text(s) and not isinstance(value, str) and path in raw:
        return raw[path]
    return value


# ---- where a value came from ---------------------------------------------------------------------------

class _Origins:
    """path in the working document -> (location prefix, path as the user wrote it), for error messages."""

    def __init__(self) -> None:
        self.by_path: dict[Path, tuple[str, Path]] = {}

    def add_file(self, filename: str, lines: dict[Path, int]) -> None:
        for path, line in lines.items():
            self.by_path[path] = (f"{filename}:{line}", path)

    def set(self, path: Path, location: str) -> None:
        self.drop(path)
        self.by_path[path] = (location, path)

    def drop(self, path: Path) -> None:
        for p in [p for p in self.by_path if p[:len(path)] == path]:
            del self.by_path[p]

    def copy(self, source: Path, target: Path) -> None:
        self.drop(target)
        for p, origin in list(self.by_path.items()):
            if p[:len(source)] == source:
                self.by_path[target + p[len(source):]] = origin

    def error(self, path: Path, message: str) -> UsageError:
        for n in range(len(path), -1, -1):
            if path[:n] in self.by_path:
                location, written = self.by_path[path[:n]]
                shown = format_path(written + path[n:])
                if location.startswith("--set"):
                    return UsageError(f"--set {shown}: {message}")
                return UsageError(f"{location}: {shown}: {message}" if shown else f"{location}: {message}")
        return UsageError(f"{format_path(path)}: {message}")


# ---- --set ---------------------------------------------------------------------------------------------

def _resolve_set_path(dotted: str) -> tuple[Path, dict]:
    """"resources.gpus" -> (("resources", "gpus"), its schema); env keys may contain dots."""
    if not dotted or dotted.startswith(".") or dotted.endswith("."):
        raise UsageError(f"--set {dotted}: expected a field path such as resources.gpus")
    path: Path = ()
    s: dict = S.SCHEMA
    rest = dotted
    while rest:
        if "oneOf" in s:
            s = next(b for b in s["oneOf"] if b.get("type") == "object")
        props = s.get("properties")
        extra = s.get("additionalProperties")
        if props is not None:
            key, _, rest = rest.partition(".")
            if not key:
                raise UsageError(f"--set {dotted}: empty field name")
            if key not in props:
                prefix = format_path(path) + "." if path else ""
                root = f"clusters.{path[1]}." if len(path) >= 2 and path[0] == "clusters" else ""
                raise UsageError(f"--set {format_path(path + (key,))}: "
                                 + S.unknown_field(key, list(props), path, prefix, root))
            s = props[key]
        elif isinstance(extra, dict):
            # Mappings of objects (clusters) take one segment; mappings of text (env) take the rest.
            if extra.get("type") == "object":
                key, _, rest = rest.partition(".")
            else:
                key, rest = rest, ""
            names = s.get("propertyNames")
            if names:
                try:
                    S.validate(key, {"type": "string", **names}, path + (key,))
                except SchemaError as e:
                    raise UsageError(f"--set {format_path(path + (key,))}: bad name: {e.message}") from None
            s = extra
        else:
            what = "a list; set it whole, e.g. --set 'data=[...]'" if s.get("type") == "array" else "not a mapping"
            raise UsageError(f"--set {format_path(path)}: {format_path(path)} is {what}")
        if not key:
            raise UsageError(f"--set {dotted}: empty field name")
        path += (key,)
    return path, s


def _parse_set(assignment: str) -> tuple[Path, Any]:
    if not isinstance(assignment, str) or "=" not in assignment:
        raise UsageError(f"--set {assignment}: expected key=value, e.g. --set resources.gpus=8")
    dotted, _, text = assignment.partition("=")
    path, s = _resolve_set_path(dotted.strip())
    if _takes_text(s):
        value: Any = text  # --set env.FOO=1 means the text "1"
    else:
        parsed = _parse_yaml(text, f"--set {format_path(path)}")
        value = _textify(parsed.data, s, (), parsed.raw)
    if path[-1:] == ("output",) and isinstance(value, str):
        value = {"url": value}
    try:
        S.validate(value, s, path)
    except SchemaError as e:
        hint = ""
        if s.get("type") == "array" and not isinstance(value, list) and e.path == path:
            hint = f"; write a list: --set '{dotted.strip()}=[{text}]'"
        raise UsageError(f"--set {format_path(e.path)}: {e.message}{hint}") from None
    return path, value


def _assign(doc: dict, path: Path, value: Any) -> None:
    target = doc
    for key in path[:-1]:
        nxt = target.get(key)
        if not isinstance(nxt, dict):
            nxt = {"url": nxt} if key == "output" and isinstance(nxt, str) else {}
            target[key] = nxt
        target = nxt
    target[path[-1]] = value


# ---- load ----------------------------------------------------------------------------------------------

def _normalize_output(doc: dict, origins: _Origins, base: Path) -> None:
    if isinstance(doc.get("output"), str):
        doc["output"] = {"url": doc["output"]}
        origins.copy(base + ("output",), base + ("output", "url"))


def _merge(doc: dict, override: dict, origins: _Origins, source: Path) -> dict:
    merged = copy.deepcopy(doc)
    merged.pop("clusters", None)
    for key, value in override.items():
        if key in _MERGED and isinstance(merged.get(key), dict) and isinstance(value, dict):
            for sub, subvalue in value.items():
                merged[key][sub] = copy.deepcopy(subvalue)
                origins.copy(source + (key, sub), (key, sub))
        else:
            merged[key] = copy.deepcopy(value)
            origins.copy(source + (key,), (key,))
    return merged


def _check(doc: dict, origins: _Origins) -> None:
    """Rules that span fields or that the merged document alone can judge."""
    for name in doc.get("env", {}):
        if name in RESERVED_ENV:
            raise origins.error(("env", name), "set by mlctl from output (credentials come from the Secret "
                                               "named by output.secret); remove it from env")
    names: dict[str, int] = {}
    paths: dict[str, int] = {}
    for i, mount in enumerate(doc.get("data", [])):
        sources = [k for k in ("hostPath", "pvc") if k in mount]
        if len(sources) != 1:
            raise origins.error(("data", i), "needs exactly one of hostPath and pvc"
                                + (", got both" if len(sources) == 2 else ""))
        if mount["name"] in names:
            raise origins.error(("data", i, "name"), f"{mount['name']} is already data[{names[mount['name']]}]")
        names[mount["name"]] = i
        path = mount["mountPath"].rstrip("/") or "/"
        if path in paths:
            raise origins.error(("data", i, "mountPath"), f"{path} is already mounted by data[{paths[path]}]")
        paths[path] = i


def _build(doc: dict, cluster: str | None, filename: str, origins: _Origins) -> Spec:
    d = S.defaults()
    res = doc.get("resources", {})
    gpus = res.get("gpus", d["resources.gpus"])
    resources = Resources(gpus=gpus, cpu=str(res.get("cpu", d["resources.cpu"])),
                          memory=res.get("memory", d["resources.memory"]),
                          pool=res.get("pool", "gpu" if gpus > 0 else "cpu"))
    out = doc.get("output")
    if out is not None and "url" not in out:
        raise origins.error(("output",), "needs url (an S3 URL such as s3://bucket/prefix/)")
    output = Output(url=out["url"], secret=out.get("secret", S.DEFAULT_SECRET)) if out else None
    sim = doc.get("simulate")
    simulate = Simulate(sim.get("runSeconds"), sim.get("exitCode"), sim.get("failReplica")) if sim else None
    spec = Spec(
        name=doc["name"], framework=doc["framework"], image=doc["image"], resources=resources,
        workers=doc.get("workers", d["workers"]),
        command=tuple(doc.get("command", ())), args=tuple(doc.get("args", ())),
        env={k: str(v) for k, v in doc.get("env", {}).items()},
        data=tuple(DataMount(m["name"], m["mountPath"], m.get("hostPath"), m.get("pvc"))
                   for m in doc.get("data", [])),
        output=output,
        restart_policy=doc.get("restartPolicy", d["restartPolicy"]),
        backoff_limit=doc.get("backoffLimit", d["backoffLimit"]),
        ttl_seconds_after_finished=doc.get("ttlSecondsAfterFinished", d["ttlSecondsAfterFinished"]),
        active_deadline_seconds=doc.get("activeDeadlineSeconds"),
        simulate=simulate, cluster=cluster, source=filename,
    )
    if simulate and simulate.fail_replica:
        kind, _, index = simulate.fail_replica.partition("-")
        count = spec.replicas().get(kind, 0)
        if int(index) >= count:
            existing = ", ".join(f"{k}-0" if n == 1 else f"{k}-0..{k}-{n - 1}" for k, n in spec.replicas().items())
            raise origins.error(("simulate", "failReplica"),
                                f"no replica {simulate.fail_replica} in a {spec.framework} job with "
                                f"workers: {spec.workers} (it has {existing})")
    return spec


def load_spec(text: str | bytes, filename: str, sets: Iterable[str] = (), cluster: str | None = None) -> Spec:
    """Parse, validate and override a TrainingJob spec; the result is the effective spec for `cluster`."""
    parsed = _parse_yaml(text, filename)
    origins = _Origins()
    origins.add_file(filename, parsed.lines)
    if parsed.data is None:
        raise UsageError(f"{filename}: empty; expected a TrainingJob (apiVersion: {S.API_VERSION}, "
                         f"kind: {S.KIND}, name, framework, image...)")
    if not isinstance(parsed.data, dict):
        raise UsageError(f"{filename}:{parsed.lines[()]}: must be a mapping of fields (apiVersion, kind, "
                         f"name, ...), got {S.describe(parsed.data)}")
    doc = _textify(parsed.data, S.SCHEMA, (), parsed.raw)
    # apiVersion and kind may be left out: such a spec is read as the current version (render writes them)
    doc.setdefault("apiVersion", S.API_VERSION)
    doc.setdefault("kind", S.KIND)
    try:
        S.validate(doc, S.SCHEMA)
    except SchemaError as e:
        raise origins.error(e.path, e.message) from None

    _normalize_output(doc, origins, ())
    for name, override in doc.get("clusters", {}).items():
        _normalize_output(override, origins, ("clusters", name))

    late: list[tuple[Path, Any, str]] = []
    for assignment in sets:
        path, value = _parse_set(assignment)
        if path[0] == "clusters":
            _assign(doc, path, value)
            origins.set(path, f"--set {assignment}")
        else:
            late.append((path, value, assignment))

    merged = doc
    override = doc.get("clusters", {}).get(cluster) if cluster else None
    merged = _merge(doc, override or {}, origins, ("clusters", cluster))
    for path, value, assignment in late:
        _assign(merged, path, value)
        origins.set(path, f"--set {assignment}")
    _check(merged, origins)
    return _build(merged, cluster, filename, origins)
