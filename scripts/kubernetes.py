"""The manifests in deploy/ and the Containerfile, checked without a cluster (scripts/kubernetes
runs this with PyYAML from its virtual environment).

    python3 scripts/kubernetes.py check --build debug deploy/kubernetes/*.yaml
        what the Kubernetes schemas cannot see: commands and flags, references, Services, suites,
        the Containerfile's COPY sources
    python3 scripts/kubernetes.py smoke --image localhost/faultline:latest deploy/kubernetes/*.yaml
        the manifests' pods run from the image with podman in one network namespace

Each problem is printed as `file: resource: what is wrong`; the exit status is 1 when there is one.
"""

import argparse
import fnmatch
import json
import os
import re
import resource
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone

import yaml

# Made with kubectl at apply time (deploy/kubernetes/README.md), so no manifest holds them: their
# keys, and how the smoke test fills them in.
CREATED_BY_KUBECTL = {
    ("Secret", "faultline-proxy-token"): {"token": lambda: secrets.token_hex(32)},
    ("ConfigMap", "faultline-load-schedule"): {
        "start-at": lambda: (datetime.now(timezone.utc) + timedelta(seconds=20)).strftime("%Y-%m-%dT%H:%M:%SZ")
    },
}
# The order in which the smoke test runs Jobs (one needs another's results); others run after.
JOB_ORDER = ["faultline-demo-suite", "faultline-orders-suite", "faultline-load", "faultline-load-merge"]
# The whole demo suite runs in `swift test` and .ci/run; in the image its baseline shows the baked
# suite, the demo binary and the results directory work.
SMOKE_EXTRA_ARGUMENTS = {"faultline-demo-suite": ["--only", "baseline"]}
# Exit statuses a Job's pods may end with in the smoke test besides 0. The merge exits 1 when the
# merged load missed its thresholds: the smoke test checks packaging, and a debug order API on a
# busy CI machine need not hold 300 orders a second (exit 2, shards that do not merge, still fails).
SMOKE_ACCEPTED_STATUS = {"faultline-load-merge": {"1"}}
# How long the smoke test waits for one podman command, and for one Job's pods (at most its
# activeDeadlineSeconds): a podman that hangs on a fresh machine fails the test, naming the command.
PODMAN_SECONDS = 120
JOB_SECONDS = 600
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
PROGRAMS = {"faultline", "faultline-demo"}

problems = []


class SmokeFailure(RuntimeError):
    """What stops the smoke test at once (podman cannot run or does not answer): printed as one
    line, after the containers are removed."""


def problem(where, text):
    if f"{where}: {text}" not in problems:
        problems.append(f"{where}: {text}")


def finish(summary):
    if problems:
        print("\n".join(problems))
        sys.exit(f"scripts/kubernetes: {len(problems)} problems")
    print(f"scripts/kubernetes: {summary}")


# MARK: The Containerfile


def containerfile_instructions(path="Containerfile"):
    """(instruction, arguments) pairs, continuation lines joined, comments dropped."""
    instructions, current = [], ""
    with open(path) as file:
        for line in file:
            stripped = line.strip()
            if not current and (not stripped or stripped.startswith("#")):
                continue
            current = (current + " " if current else "") + stripped.rstrip("\\").strip()
            if stripped.endswith("\\"):
                continue
            keyword, _, rest = current.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
            current = ""
    return instructions


def containerignore_excludes(path, patterns):
    """Whether .containerignore's patterns (Docker's rules: the last match wins, a directory's
    match covers what it holds) leave `path` out of the build context."""
    parts = path.strip("/").split("/")
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = (pattern[1:] if negated else pattern).strip("/")
        if any(fnmatch.fnmatchcase("/".join(parts[:depth]), pattern) for depth in range(1, len(parts) + 1)):
            excluded = not negated
    return excluded


class Image:
    """What the Containerfile puts where, read from its COPY instructions and their sources."""

    def __init__(self):
        self.entrypoint = None
        self.copies = []  # (source in the build context, its path in the image)
        arguments = {}
        patterns = []
        if os.path.exists(".containerignore"):
            with open(".containerignore") as file:
                patterns = [line.strip() for line in file if line.strip() and not line.startswith("#")]
        expand = lambda text: re.sub(r"\$\{?(\w+)\}?", lambda match: arguments.get(match.group(1), match.group(0)), text)
        for keyword, rest in containerfile_instructions():
            if keyword == "ARG":
                name, _, default = rest.partition("=")
                arguments[name] = default
            elif keyword == "ENTRYPOINT":
                self.entrypoint = json.loads(rest)
            elif keyword in ("COPY", "ADD"):
                tokens = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
                if any(token.startswith("--from") for token in tokens):
                    continue
                *sources, destination = [expand(token) for token in tokens if not token.startswith("--")]
                for source in sources:
                    if not os.path.exists(source):
                        hint = "scripts/container-image stages it" if source.startswith(".build/container") else "build it first"
                        problem("Containerfile", f"COPY source {source} does not exist ({hint})")
                    elif containerignore_excludes(source, patterns):
                        problem("Containerfile", f"COPY source {source} is excluded by .containerignore")
                    elif destination.endswith("/") and not os.path.isdir(source):
                        self.copies.append((source, destination + os.path.basename(source)))
                    else:
                        self.copies.append((source, destination.rstrip("/") or "/"))

    def holds(self, path):
        """Whether the image has a file at `path`."""
        for source, destination in self.copies:
            if path == destination:
                return True
            prefix = destination.rstrip("/") + "/"
            if os.path.isdir(source) and path.startswith(prefix) and os.path.lexists(os.path.join(source, path[len(prefix):])):
                return True
        return False


# MARK: Manifests


def load(paths):
    resources = []
    for path in paths:
        with open(path) as file:
            for document in yaml.safe_load_all(file):
                if document:
                    resources.append((path, document))
    return resources


def pod_spec(resource):
    kind = resource.get("kind")
    if kind == "Pod":
        return resource.get("spec", {})
    if kind in WORKLOADS:
        return resource.get("spec", {}).get("template", {}).get("spec", {})
    if kind == "CronJob":
        return resource["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return None


def pod_labels(resource):
    if resource.get("kind") == "Pod":
        return resource.get("metadata", {}).get("labels", {})
    return resource.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {})


def name_of(resource):
    return f"{resource['kind']}/{resource['metadata']['name']}"


def is_faultline_image(image):
    """Whether the image is this repository's (`localhost/faultline:latest`, `registry/x/faultline@sha256:…`)."""
    repository = image.split("@")[0]
    if ":" in repository.rsplit("/", 1)[-1]:
        repository = repository.rsplit(":", 1)[0]
    return repository.rsplit("/", 1)[-1] == "faultline"


def is_native_sidecar(container, spec):
    return container in spec.get("initContainers", []) and container.get("restartPolicy") == "Always"


def config_data(resources):
    """(kind, name) → {key: value} for the ConfigMaps in the manifests and what kubectl makes."""
    data = {("ConfigMap", r["metadata"]["name"]): dict(r.get("data", {})) for _, r in resources if r["kind"] == "ConfigMap"}
    data.update({("Secret", r["metadata"]["name"]): dict(r.get("stringData", {})) for _, r in resources if r["kind"] == "Secret"})
    for key, values in CREATED_BY_KUBECTL.items():
        data.setdefault(key, {name: make() for name, make in values.items()})
    return data


def volume_source(volume):
    """(kind, name, source) of a ConfigMap or Secret volume, else None."""
    if "configMap" in volume:
        return "ConfigMap", volume["configMap"]["name"], volume["configMap"]
    if "secret" in volume:
        return "Secret", volume["secret"]["secretName"], volume["secret"]
    return None


def volume_files(volume, data):
    """The files a ConfigMap or Secret volume holds: {path: content}."""
    kind, name, source = volume_source(volume)
    values = data.get((kind, name), {})
    if source.get("items"):
        return {item["path"]: values.get(item["key"], "") for item in source["items"]}
    return values


def argv_of(container, entrypoint):
    """What the container runs: `command` replaces the image's ENTRYPOINT, `args` its CMD."""
    return (container.get("command") or entrypoint or []) + container.get("args", [])


def expand(token, environment):
    """Kubernetes' $(VAR) expansion; an unknown variable stays as written."""
    return re.sub(r"\$\((\w+)\)", lambda match: environment.get(match.group(1), match.group(0)), token)


def commands_in(argv):
    """The commands a container runs: its argv, or each command of a `sh -c` script."""
    if len(argv) >= 3 and os.path.basename(argv[0]) == "sh" and argv[1] == "-c":
        commands, current = [], []
        for token in shlex.split(argv[2]):
            if token in ("&&", "||", ";", "|"):
                commands.append(current)
                current = []
            else:
                current.append(token)
        return [command for command in commands + [current] if command]
    return [argv]


def help_flags(run, program, subcommand, cache):
    """The long flags `program subcommand --help` lists (run through `run`), or None when there is
    no such subcommand."""
    key = (program, subcommand)
    if key not in cache:
        command = run(program) + [subcommand, "--help"]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=PODMAN_SECONDS)
        except subprocess.TimeoutExpired:
            raise SmokeFailure(f"{' '.join(command)} did not finish in {PODMAN_SECONDS} s")
        cache[key] = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", result.stdout)) | {"--help"} if result.returncode == 0 else None
    return cache[key]


# MARK: check


def check_command(where, command, run, cache):
    program = os.path.basename(command[0])
    subcommand = next((token for token in command[1:] if not token.startswith("-")), None)
    if program not in PROGRAMS or subcommand is None:
        return
    accepted = help_flags(run, program, subcommand, cache)
    if accepted is None:
        problem(where, f"`{program} {subcommand}`: no such subcommand")
        return
    for token in command[1:]:
        flag = token.split("=", 1)[0]
        if not flag.startswith("--") or flag in accepted:
            continue
        problem(where, f"`{program} {subcommand}` does not accept {flag} (see `{program} {subcommand} --help`)")


def check_pods(resources, image, run):
    data = config_data(resources)
    claims = {(r["metadata"].get("namespace"), r["metadata"]["name"]) for _, r in resources if r["kind"] == "PersistentVolumeClaim"}
    cache = {}
    for path, workload in resources:
        spec = pod_spec(workload)
        if spec is None:
            continue
        namespace = workload["metadata"].get("namespace")
        volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
        for volume in volumes.values():
            where = f"{path}: {name_of(workload)}: volume {volume['name']}"
            if volume_source(volume):
                kind, name, source = volume_source(volume)
                if (kind, name) not in data:
                    problem(where, f"{kind} {name} is neither in the manifests nor made with kubectl (README)")
                for item in source.get("items", []):
                    if item["key"] not in data.get((kind, name), {item["key"]: ""}):
                        problem(where, f"{kind} {name} has no key {item['key']}")
            claim = volume.get("persistentVolumeClaim", {}).get("claimName")
            if claim and (namespace, claim) not in claims:
                problem(where, f"no PersistentVolumeClaim {claim} in namespace {namespace}")

        indexed = workload["kind"] == "Job" and workload["spec"].get("completionMode") == "Indexed"
        for container in spec.get("initContainers", []) + spec.get("containers", []):
            where = f"{path}: {name_of(workload)}: container {container['name']}"
            environment = {"JOB_COMPLETION_INDEX": "0"} if indexed else {}
            for variable in container.get("env", []):
                environment[variable["name"]] = variable.get("value", "x")
                reference = variable.get("valueFrom", {})
                for kind, field in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                    if field in reference and reference[field]["key"] not in data.get((kind, reference[field]["name"]), {}):
                        problem(where, f"env {variable['name']}: {kind} {reference[field]['name']} has no key {reference[field]['key']}")
            mounts = {}
            for mount in container.get("volumeMounts", []):
                if mount["name"] in volumes:
                    mounts[mount["mountPath"].rstrip("/")] = volumes[mount["name"]]
                else:
                    problem(where, f"volumeMount {mount['name']} names no volume")
            if not is_faultline_image(container["image"]):
                continue
            argv = argv_of(container, image.entrypoint)
            for token in argv:
                for variable in re.findall(r"\$\((\w+)\)", token):
                    if variable not in environment:
                        problem(where, f"$({variable}) is not in the container's environment: Kubernetes would pass it as written")
            argv = [expand(token, environment) for token in argv]
            if not image.holds(argv[0]):
                problem(where, f"{argv[0]} is not in the image")
            for command in commands_in(argv):
                check_command(where, command, run, cache)
            # Files named on the command line: in a mounted ConfigMap or Secret, else in the image.
            for token in argv[1:]:
                if not token.startswith("/") or "*" in token:
                    continue
                mount = max((m for m in mounts if token.startswith(m + "/")), key=len, default=None)
                if mount is None:
                    if not image.holds(token):
                        problem(where, f"{token} is neither in a mounted volume nor in the image")
                elif volume_source(mounts[mount]) and token[len(mount) + 1 :] not in volume_files(mounts[mount], data):
                    problem(where, f"{token}: the {volume_source(mounts[mount])[0]} mounted at {mount} holds no such file")


def selected_pods(service, resources):
    selector = service["spec"].get("selector") or {}
    namespace = service["metadata"].get("namespace")
    return [r for _, r in resources if pod_spec(r) is not None and r["kind"] != "Job" and r["metadata"].get("namespace") == namespace
            and selector and selector.items() <= pod_labels(r).items()]


def target_port(port, pod):
    """The container port number a Service port reaches in the pod, or None."""
    target = port.get("targetPort", port["port"])
    spec = pod_spec(pod)
    containers = spec.get("containers", []) + [c for c in spec.get("initContainers", []) if is_native_sidecar(c, spec)]
    for container in containers:
        for declared in container.get("ports", []):
            if declared["containerPort"] == target:
                return target
            # A native sidecar's named port is found only from Kubernetes 1.32 on.
            if declared.get("name") == target and not is_native_sidecar(container, spec):
                return declared["containerPort"]
    return None


def check_services(resources):
    for path, service in resources:
        if service["kind"] != "Service" or not service.get("spec", {}).get("selector"):
            continue
        where = f"{path}: {name_of(service)}"
        pods = selected_pods(service, resources)
        if not pods:
            problem(where, f"selects no pod in the manifests ({service['spec']['selector']})")
        for pod in pods:
            for port in service["spec"].get("ports", []):
                if target_port(port, pod) is None:
                    problem(where, f"port {port.get('name', port['port'])}: {name_of(pod)} declares no container port {port.get('targetPort', port['port'])}"
                            " (a native sidecar's port by number: Services find its names only from Kubernetes 1.32 on)")


def check_suites(resources, faultline):
    """Each ConfigMap holding a suite (experiments.yaml) passes `faultline validate`; JSON parses."""
    for path, config_map in resources:
        if config_map["kind"] != "ConfigMap":
            continue
        where = f"{path}: {name_of(config_map)}"
        for key, text in config_map.get("data", {}).items():
            if key.endswith(".json"):
                try:
                    json.loads(text)
                except ValueError as error:
                    problem(where, f"{key} is not JSON: {error}")
        if "experiments.yaml" not in config_map.get("data", {}):
            continue
        with tempfile.TemporaryDirectory() as directory:
            for key, text in config_map["data"].items():
                with open(os.path.join(directory, key), "w") as file:
                    file.write(text)
            result = subprocess.run([faultline, "validate", os.path.join(directory, "experiments.yaml")], capture_output=True, text=True,
                                    env={**os.environ, "NO_COLOR": "1"})
            if result.returncode != 0:
                problem(where, "its suite does not validate:\n" + (result.stdout + result.stderr).replace(directory + "/", ""))


def check(arguments):
    binaries = {program: f".build/{arguments.build}/{program}" for program in PROGRAMS}
    for binary in binaries.values():
        if not os.access(binary, os.X_OK):
            sys.exit(f"scripts/kubernetes: {binary} is missing; build it first")
    image = Image()
    resources = load(arguments.manifests)
    check_pods(resources, image, lambda program: [binaries[program]])
    check_services(resources)
    check_suites(resources, binaries["faultline"])
    finish(f"the commands, references, Services and suites of {len(resources)} resources, and the Containerfile's COPY sources, check out")


# MARK: smoke


class Pod:
    """Containers from one image sharing one network namespace, as a cluster's pods reach each
    other: each Service's names resolve to 127.0.0.1 there, where its pods listen."""

    def __init__(self, image, hosts, directory):
        self.image = image
        self.label = f"faultline-smoke={os.getpid()}"
        self.directory = directory
        self.options = self.runnable_options()
        self.net = self.name("net")
        self.entrypoint = json.loads(self.podman("image", "inspect", "--format", "{{json .Config.Entrypoint}}", image).stdout)
        arguments = ["run", "-d", "--name", self.net, "--label", self.label, *self.options, "--entrypoint", "/bin/sleep"]
        for host in hosts:
            arguments += ["--add-host", f"{host}:127.0.0.1"]
        self.podman(*arguments, image, "3600")
        self.pid = int(self.podman("inspect", "--format", "{{.State.Pid}}", self.net).stdout)

    @staticmethod
    def name(base):
        """A container's name in this run: two smoke tests on one machine do not collide."""
        return f"faultline-smoke-{os.getpid()}-{base}"

    @staticmethod
    def podman(*arguments, check=True, timeout=PODMAN_SECONDS):
        try:
            result = subprocess.run(["podman", *arguments], capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise SmokeFailure(f"podman {' '.join(arguments)} did not finish in {timeout} s (is podman's storage locked by another run?)")
        if check and result.returncode != 0:
            raise SmokeFailure(f"podman {' '.join(arguments)}: {result.stderr.strip()}")
        return result

    def runnable_options(self):
        """Options podman run needs on this machine. Some sandboxes refuse the file and process
        limits podman sets (no CAP_SYS_RESOURCE) and crun's cgroup setup (hybrid cgroups); runc
        with the current limits runs there."""
        if self.podman("run", "--rm", self.image, "--version", check=False).returncode == 0:
            return []
        files = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        with open("/proc/sys/kernel/pid_max") as file:
            processes = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], int(file.read()))
        options = ["--runtime", "runc", "--ulimit", f"nofile={files}:{files}", "--ulimit", f"nproc={processes}:{processes}"]
        result = self.podman("run", "--rm", *options, self.image, "--version", check=False)
        if result.returncode != 0:
            raise SmokeFailure(f"podman cannot run {self.image} here, even with {' '.join(options)}: {result.stderr.strip()}")
        print(f"scripts/kubernetes: podman runs containers here with {' '.join(options)}")
        return options

    def start(self, name, container, spec, data, environment, extra_arguments=()):
        """Starts one container of a pod spec as Kubernetes would, in this network namespace."""
        security = {**spec.get("securityContext", {}), **container.get("securityContext", {})}
        name = self.name(name)
        arguments = ["run", "-d", "--name", name, "--label", self.label, "--network", f"container:{self.net}", *self.options]
        if "runAsUser" in security:
            arguments += ["--user", f"{security['runAsUser']}:{security.get('runAsGroup', security['runAsUser'])}"]
        if "fsGroup" in security:
            arguments += ["--group-add", str(security["fsGroup"])]
        if security.get("readOnlyRootFilesystem"):
            arguments += ["--read-only", "--read-only-tmpfs=false"]
        if "ALL" in security.get("capabilities", {}).get("drop", []):
            arguments += ["--cap-drop", "all"]
        if security.get("allowPrivilegeEscalation") is False:
            arguments += ["--security-opt", "no-new-privileges"]
        environment = dict(environment)
        for variable in container.get("env", []):
            reference = variable.get("valueFrom", {})
            if "value" in variable:
                environment[variable["name"]] = expand(variable["value"], environment)
            for kind, field in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                if field in reference:
                    environment[variable["name"]] = data[(kind, reference[field]["name"])][reference[field]["key"]]
        for key, value in environment.items():
            arguments += ["--env", f"{key}={value}"]
        volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
        for mount in container.get("volumeMounts", []):
            arguments += ["--volume", f"{self.volume(volumes[mount['name']], data, security)}:{mount['mountPath']}" + (":ro" if mount.get("readOnly") else "")]
        argv = [expand(token, environment) for token in argv_of(container, self.entrypoint)] + list(extra_arguments)
        arguments += ["--entrypoint", json.dumps(argv[:1]), self.image, *argv[1:]]
        self.podman(*arguments)
        return name

    def volume(self, volume, data, security):
        """The host directory standing in for a volume: ConfigMap and Secret files, a claim's
        directory shared by every pod (owned by fsGroup), or a fresh emptyDir."""
        if volume_source(volume):
            kind, name, _ = volume_source(volume)
            path = tempfile.mkdtemp(dir=self.directory, prefix=f"{kind}-{name}-")
            for file_name, content in volume_files(volume, data).items():
                with open(os.path.join(path, file_name), "w") as file:
                    file.write(content)
                os.chmod(os.path.join(path, file_name), 0o644)
        elif "persistentVolumeClaim" in volume:
            path = os.path.join(self.directory, "claim-" + volume["persistentVolumeClaim"]["claimName"])
            if not os.path.exists(path):
                os.mkdir(path)
                os.chown(path, 0, security.get("fsGroup", 0))
                os.chmod(path, 0o2775)
            return path
        else:
            path = tempfile.mkdtemp(dir=self.directory, prefix="emptyDir-")
            os.chmod(path, 0o1777)
            return path
        os.chmod(path, 0o755)
        return path

    def inside(self, code):
        """Runs Python code in the pod's network namespace; returns its standard output."""
        try:
            result = subprocess.run(["nsenter", f"--net=/proc/{self.pid}/ns/net", sys.executable, "-c", code], capture_output=True, text=True,
                                    timeout=30)
        except subprocess.TimeoutExpired:
            raise RuntimeError("no answer in 30 s")
        if result.returncode != 0:
            raise RuntimeError(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "failed")
        return result.stdout

    def probe(self, probe, ports, deadline):
        """Waits until a tcpSocket or httpGet probe passes, as the kubelet would, or the deadline."""
        port = probe.get("tcpSocket", probe.get("httpGet", {})).get("port")
        port = ports.get(port, port)
        if "httpGet" in probe:
            code = ("import urllib.request; urllib.request.urlopen("
                    f"'http://127.0.0.1:{port}{probe['httpGet'].get('path', '/')}', timeout=1)")
        else:
            code = f"import socket; socket.create_connection(('127.0.0.1', {port}), 1).close()"
        while True:
            try:
                self.inside(code)
                return True
            except RuntimeError:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.5)

    def logs(self, name):
        result = self.podman("logs", name, check=False)
        return (result.stdout + result.stderr).strip()

    @classmethod
    def remove(cls):
        """Removes every container this run started (also when starting the pod failed half way)."""
        try:
            names = cls.podman("ps", "-a", "--filter", f"label=faultline-smoke={os.getpid()}", "--format", "{{.Names}}", check=False).stdout.split()
            # The containers that share the network container's namespace first: podman does not
            # remove a container others depend on, even in the same command.
            net = cls.name("net")
            for batch in ([name for name in names if name != net], [name for name in names if name == net]):
                if batch:
                    result = cls.podman("rm", "-f", "-t", "0", *batch, check=False)
                    if result.returncode != 0:
                        print(f"scripts/kubernetes: podman rm {' '.join(batch)}: {result.stderr.strip()}", file=sys.stderr)
        except SmokeFailure as failure:
            print(f"scripts/kubernetes: the smoke test's containers may be left: {failure}", file=sys.stderr)


def smoke(arguments):
    if os.geteuid() != 0:
        sys.exit("scripts/kubernetes: the smoke test runs as root (rootful podman; nsenter into the pods' network namespace)")
    resources = load(arguments.manifests)
    data = config_data(resources)
    for path, workload in resources:
        spec = pod_spec(workload) or {}
        for container in spec.get("initContainers", []) + spec.get("containers", []):
            if not is_faultline_image(container["image"]):
                problem(f"{path}: {name_of(workload)}", f"{container['name']}: the smoke test runs only the faultline image, not {container['image']}")
    services = [r for _, r in resources if r["kind"] == "Service"]
    hosts = []
    for service in services:
        name, namespace = service["metadata"]["name"], service["metadata"].get("namespace", "default")
        hosts += [name, f"{name}.{namespace}", f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.cluster.local"]
        # One network namespace stands in for the cluster network: a Service port is its pods' port.
        for pod in selected_pods(service, resources):
            for port in service["spec"].get("ports", []):
                if target_port(port, pod) != port["port"]:
                    problem(name_of(service), f"port {port['port']} reaches port {target_port(port, pod)}: the smoke test needs them equal")
    finish_early()

    directory = tempfile.mkdtemp(prefix="faultline-smoke-")
    os.chmod(directory, 0o755)
    started, ran = [], []

    # A time limit (timeout(1) in .ci/run) stops the test with SIGTERM: the containers go too.
    def stopped(number, frame):
        raise SmokeFailure("SIGTERM (a time limit?) before it finished")

    signal.signal(signal.SIGTERM, stopped)
    try:
        pod = Pod(arguments.image, hosts, directory)
        run_image_checks(pod)
        started, containers = start_long_running(pod, resources, data)
        finish_early()
        ran = run_jobs(pod, resources, data)
        check_sidecars(pod, resources, data)
        check_results(pod, resources, ran, started, directory)
        stop_long_running(pod, containers)
    except SmokeFailure as failure:
        problem(arguments.image, f"the smoke test stopped: {failure}")
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        Pod.remove()
        if arguments.keep:
            print(f"scripts/kubernetes: the volumes are in {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)
    finish(f"the image ran the manifests' pods: {', '.join(started + ran)}")


def finish_early():
    if problems:
        finish("")


def run_image_checks(pod):
    """The image on its own: its help, and the proxy's refusal to serve beyond loopback without a token."""
    result = pod.podman("run", "--rm", *pod.options, pod.image, check=False)
    if result.returncode != 0 or "USAGE: faultline" not in result.stdout:
        problem(pod.image, f"`faultline --help` (the image's default command) failed: {result.stdout}{result.stderr}")
    result = pod.podman("run", "--rm", *pod.options, pod.image, "proxy", "--host", "0.0.0.0", check=False)
    if result.returncode != 2 or "without a token" not in result.stderr:
        problem(pod.image, f"`faultline proxy --host 0.0.0.0` without a token should refuse with status 2; got {result.returncode}: {result.stderr}")


def start_long_running(pod, resources, data):
    """Starts every Deployment and Pod: native sidecars first (each past its startup probe), then
    the containers, then waits for their readiness probes. Returns the workloads and containers
    started, in order."""
    started, containers = [], []
    for path, workload in resources:
        spec = pod_spec(workload)
        if spec is None or workload["kind"] == "Job":
            continue
        name = workload["metadata"]["name"]
        for container in spec.get("initContainers", []) + spec.get("containers", []):
            container_name = pod.start(f"{name}-{container['name']}", container, spec, data, {})
            containers.append((workload, container, container_name))
            ports = {p["name"]: p["containerPort"] for p in container.get("ports", []) if "name" in p}
            for kind in ("startupProbe", "readinessProbe"):
                if kind in container and not pod.probe(container[kind], ports, time.monotonic() + 60):
                    problem(f"{path}: {name_of(workload)}", f"{container['name']}: the {kind} did not pass in 60 s:\n{pod.logs(container_name)}")
                    return started, containers
        started.append(name_of(workload))
    return started, containers


def stop_long_running(pod, containers):
    """Stops them as the kubelet does (SIGTERM, then SIGKILL after the grace period), last started
    first; faultline and faultline-demo, each its container's process 1, must exit 0 in time."""
    for workload, container, container_name in reversed(containers):
        grace = pod_spec(workload).get("terminationGracePeriodSeconds", 30)
        pod.podman("stop", "-t", str(grace), container_name, check=False, timeout=grace + PODMAN_SECONDS)
        status = pod.podman("inspect", "--format", "{{.State.ExitCode}}", container_name, check=False).stdout.strip()
        if os.path.basename(argv_of(container, pod.entrypoint)[0]) in PROGRAMS and status != "0":
            problem(name_of(workload), f"{container['name']} exited with {status} on SIGTERM, not 0:\n{pod.logs(container_name)[-2000:]}")


def run_jobs(pod, resources, data):
    """Runs each Job's pods to completion (all of an Indexed Job's at once) and checks they succeed."""
    jobs = [(path, r) for path, r in resources if r["kind"] == "Job"]
    jobs.sort(key=lambda job: JOB_ORDER.index(job[1]["metadata"]["name"]) if job[1]["metadata"]["name"] in JOB_ORDER else len(JOB_ORDER))
    ran = []
    for path, job in jobs:
        name = job["metadata"]["name"]
        spec = pod_spec(job)
        container = spec["containers"][0]
        # What kubectl makes just before a Job (the load schedule's instant) is made again now,
        # so an instant a few seconds ahead is still ahead when the Job's pods start.
        for key, values in CREATED_BY_KUBECTL.items():
            if key[0] == "ConfigMap":
                data[key] = {value_name: make() for value_name, make in values.items()}
        indexed = job["spec"].get("completionMode") == "Indexed"
        completions = job["spec"].get("completions", 1)
        names, began = [], time.monotonic()
        for index in range(completions):
            environment = {"JOB_COMPLETION_INDEX": str(index)} if indexed else {}
            names.append(pod.start(f"{name}-{index}", container, spec, data, environment, extra_arguments=SMOKE_EXTRA_ARGUMENTS.get(name, [])))
        deadline = began + min(job["spec"].get("activeDeadlineSeconds", JOB_SECONDS), JOB_SECONDS)
        for container_name in names:
            seconds = max(1, round(deadline - time.monotonic()))
            try:
                result = pod.podman("wait", container_name, check=False, timeout=seconds)
                status = result.stdout.strip()
            except SmokeFailure:
                status = None
            if status is None:
                problem(f"{path}: {name_of(job)}", f"{container_name} did not finish in {JOB_SECONDS} s:\n{pod.logs(container_name)[-4000:]}")
            elif status != "0" and status not in SMOKE_ACCEPTED_STATUS.get(name, set()):
                problem(f"{path}: {name_of(job)}", f"{container_name} exited with {status or result.stderr.strip()}:\n{pod.logs(container_name)[-4000:]}")
        print(f"scripts/kubernetes: {name_of(job)}: {len(names)} pod(s) ran in {time.monotonic() - began:.0f} s")
        ran.append(name_of(job))
    return ran


def check_sidecars(pod, resources, data):
    """Each `faultline proxy` behind a Service: its API refuses a request without the token and,
    with it, shows every proxy without toxics (the suites removed theirs)."""
    for service in (r for _, r in resources if r["kind"] == "Service"):
        for workload in selected_pods(service, resources):
            spec = pod_spec(workload)
            for container in spec.get("initContainers", []) + spec.get("containers", []):
                argv = argv_of(container, pod.entrypoint)
                if "proxy" not in argv or "--token-file" not in argv:
                    continue
                ports = [p["containerPort"] for p in container.get("ports", [])]
                for port in service["spec"]["ports"]:
                    if port["port"] not in ports:
                        continue
                    volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
                    token_path = argv[argv.index("--token-file") + 1]
                    mount = next(m for m in container["volumeMounts"] if token_path.startswith(m["mountPath"].rstrip("/") + "/"))
                    token = volume_files(volumes[mount["name"]], data)[token_path[len(mount["mountPath"].rstrip("/")) + 1:]]
                    # Sent to the pod's address with the Service's name as Host, as a client in
                    # the cluster sends it (names resolve in the containers, not in this process).
                    host = f"{service['metadata']['name']}:{port['port']}"
                    url = f"http://127.0.0.1:{port['port']}/proxies"
                    code = f"""
import json, urllib.request, urllib.error
def get(headers):
    return urllib.request.urlopen(urllib.request.Request({url!r}, headers={{"Host": {host!r}, **headers}}), timeout=5)
try:
    get({{}})
    print(json.dumps({{"unauthenticated": 200}}))
except urllib.error.HTTPError as error:
    print(json.dumps({{"unauthenticated": error.code, "proxies": json.load(get({{"Authorization": "Bearer " + {token!r}}}))}}))
"""
                    where = f"{name_of(service)} → {name_of(workload)} {container['name']}"
                    try:
                        answer = json.loads(pod.inside(code))
                    except RuntimeError as error:
                        problem(where, f"GET {url} (Host: {host}): {error}")
                        continue
                    if answer["unauthenticated"] != 401:
                        problem(where, f"GET {url} (Host: {host}) without the token answered {answer['unauthenticated']}, not 401")
                    left = {name: proxy["toxics"] for name, proxy in answer.get("proxies", {}).items() if proxy.get("toxics")}
                    if left:
                        problem(where, f"toxics left on the proxy after the Jobs: {left}")
                    if not answer.get("proxies"):
                        problem(where, "the proxy's --config created no proxies")


def check_results(pod, resources, ran, started, directory):
    """The Jobs' journals and reports are on the results volume, and `kubectl cp` (tar in the
    container) copies them out of the reader pod."""
    for path, job in resources:
        if name_of(job) not in ran:
            continue
        argv = argv_of(pod_spec(job)["containers"][0], pod.entrypoint)

        def on_host(target):
            mount = next(m for m in pod_spec(job)["containers"][0]["volumeMounts"] if target.startswith(m["mountPath"].rstrip("/") + "/"))
            claim = next(v for v in pod_spec(job)["volumes"] if v["name"] == mount["name"])["persistentVolumeClaim"]["claimName"]
            return os.path.join(directory, "claim-" + claim, target[len(mount["mountPath"].rstrip("/")) + 1:])

        for command in commands_in(argv):
            for flag in ("--journal-path", "--report-dir", "--output"):
                if flag not in command[:-1]:
                    continue
                target = expand(command[command.index(flag) + 1], {"JOB_COMPLETION_INDEX": "0"})
                host = on_host(target)
                if flag == "--output":
                    # A report file (the merge Job's merged.md and merged.html): written, not empty.
                    if not os.path.isfile(host) or os.path.getsize(host) == 0:
                        problem(f"{path}: {name_of(job)}", f"{flag} {target} was not written")
                elif not os.path.isdir(host) or not os.listdir(host):
                    problem(f"{path}: {name_of(job)}", f"{flag} {target} is empty")
    for path, reader in resources:
        if reader["kind"] != "Pod" or name_of(reader) not in started:
            continue
        for container in reader["spec"]["containers"]:
            for mount in container.get("volumeMounts", []):
                # What `kubectl cp POD:PATH .` runs in the container.
                reader_name = pod.name(f"{reader['metadata']['name']}-{container['name']}")
                try:
                    result = subprocess.run(f"podman exec {reader_name} tar cf - {mount['mountPath']} | tar tf -",
                                            shell=True, capture_output=True, text=True, timeout=PODMAN_SECONDS)
                except subprocess.TimeoutExpired:
                    problem(f"{path}: {name_of(reader)}", f"tar cf - {mount['mountPath']} (kubectl cp) did not finish in {PODMAN_SECONDS} s")
                    continue
                if result.returncode != 0 or not any(line.endswith(".json") for line in result.stdout.splitlines()):
                    problem(f"{path}: {name_of(reader)}", f"tar cf - {mount['mountPath']} (kubectl cp) gave no journals: {result.stderr.strip()}")


def main():
    parser = argparse.ArgumentParser()
    subcommands = parser.add_subparsers(dest="command", required=True)
    check_parser = subcommands.add_parser("check")
    check_parser.add_argument("--build", choices=["debug", "release"], default="debug")
    check_parser.add_argument("manifests", nargs="+")
    smoke_parser = subcommands.add_parser("smoke")
    smoke_parser.add_argument("--image", required=True)
    smoke_parser.add_argument("--keep", action="store_true", help="keep the results volume's directory and print where it is")
    smoke_parser.add_argument("manifests", nargs="+")
    arguments = parser.parse_args()
    check(arguments) if arguments.command == "check" else smoke(arguments)


main()
