"""Validates rendered Kubernetes manifests (multi-document YAML files given as arguments):
 * core kinds and every pod template against the Kubernetes OpenAPI schemas, strict (unknown
   fields are errors), from PyPI's kubernetes-validate;
 * PodMonitor/ServiceMonitor (monitoring.coreos.com/v1), LeaderWorkerSet
   (leaderworkerset.x-k8s.io/v1) and MPIJob (kubeflow.org/v2beta1) spec fields against Strata's
   own transcription of those CRDs' OpenAPI schemas (no PyPI package ships them), with
   jsonschema;
 * cross references a schema cannot see: probe and Service ports name a container port, volume
   mounts name a volume, GPU requests equal limits, /dev/shm is a memory emptyDir, and each
   Service/PodMonitor selector matches some pod template.
Prints one line per document and exits 1 if any file has an error.
"""
import json
import sys

import jsonschema
import kubernetes_validate
import yaml

K8S_VERSION = kubernetes_validate.latest_version()
POD_TEMPLATE = {"type": "object", "required": ["spec"], "additionalProperties": False,
                "properties": {"metadata": {"type": "object"}, "spec": {"type": "object"}}}
# Prometheus Operator durations, as its CRDs write them.
DURATION = {"type": "string",
            "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"}
LABEL_SELECTOR = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
        "matchExpressions": {"type": "array", "items": {
            "type": "object", "required": ["key", "operator"], "additionalProperties": False,
            "properties": {"key": {"type": "string"}, "operator": {"type": "string"},
                           "values": {"type": "array", "items": {"type": "string"}}}}},
    },
}
INT_OR_STRING = {"anyOf": [{"type": "integer"}, {"type": "string"}]}
# The scrape endpoint fields PodMonitor's podMetricsEndpoints and ServiceMonitor's endpoints share.
ENDPOINT_FIELDS = {
    "port": {"type": "string"}, "targetPort": INT_OR_STRING, "path": {"type": "string"},
    "scheme": {"enum": ["http", "https", "HTTP", "HTTPS"]}, "params": {"type": "object"},
    "interval": DURATION, "scrapeTimeout": DURATION, "honorLabels": {"type": "boolean"},
    "honorTimestamps": {"type": "boolean"}, "trackTimestampsStaleness": {"type": "boolean"},
    "relabelings": {"type": "array", "items": {"type": "object"}},
    "metricRelabelings": {"type": "array", "items": {"type": "object"}},
    "bearerTokenSecret": {"type": "object"}, "basicAuth": {"type": "object"}, "oauth2": {"type": "object"},
    "authorization": {"type": "object"}, "tlsConfig": {"type": "object"}, "proxyUrl": {"type": "string"},
    "followRedirects": {"type": "boolean"}, "enableHttp2": {"type": "boolean"}, "filterRunning": {"type": "boolean"},
}
MONITOR_COMMON = {
    "jobLabel": {"type": "string"}, "selector": LABEL_SELECTOR,
    "namespaceSelector": {"type": "object", "additionalProperties": False, "properties": {
        "any": {"type": "boolean"}, "matchNames": {"type": "array", "items": {"type": "string"}}}},
    "sampleLimit": {"type": "integer", "minimum": 0}, "targetLimit": {"type": "integer", "minimum": 0},
    "labelLimit": {"type": "integer", "minimum": 0}, "labelNameLengthLimit": {"type": "integer", "minimum": 0},
    "labelValueLengthLimit": {"type": "integer", "minimum": 0}, "keepDroppedTargets": {"type": "integer", "minimum": 0},
    "attachMetadata": {"type": "object"}, "scrapeClass": {"type": "string"},
    "scrapeProtocols": {"type": "array", "items": {"type": "string"}},
    "selectorMechanism": {"enum": ["RelabelConfig", "RoleSelector"]},
}
POD_MONITOR_SPEC = {
    "type": "object", "required": ["selector"], "additionalProperties": False,
    "properties": {**MONITOR_COMMON, "podTargetLabels": {"type": "array", "items": {"type": "string"}},
                   "podMetricsEndpoints": {"type": "array", "items": {
                       "type": "object", "additionalProperties": False,
                       "properties": {**ENDPOINT_FIELDS, "portNumber": {"type": "integer", "minimum": 1,
                                                                        "maximum": 65535}}}}},
}
SERVICE_MONITOR_SPEC = {
    "type": "object", "required": ["selector"], "additionalProperties": False,
    "properties": {**MONITOR_COMMON, "targetLabels": {"type": "array", "items": {"type": "string"}},
                   "podTargetLabels": {"type": "array", "items": {"type": "string"}},
                   "endpoints": {"type": "array", "items": {"type": "object", "additionalProperties": False,
                                                            "properties": ENDPOINT_FIELDS}}},
}
LWS_SPEC = {
    "type": "object", "required": ["leaderWorkerTemplate"], "additionalProperties": False,
    "properties": {
        "replicas": {"type": "integer", "minimum": 0},
        "startupPolicy": {"enum": ["LeaderCreated", "LeaderReady"]},
        "rolloutStrategy": {"type": "object"},
        "networkConfig": {"type": "object", "properties": {"subdomainPolicy": {"enum": ["Shared", "UniquePerReplica"]}}},
        "leaderWorkerTemplate": {
            "type": "object", "required": ["workerTemplate"], "additionalProperties": False,
            "properties": {
                "size": {"type": "integer", "minimum": 1},
                "restartPolicy": {"enum": ["RecreateGroupOnPodRestart", "RecreateGroupAfterStart", "None", "Default"]},
                "leaderTemplate": POD_TEMPLATE, "workerTemplate": POD_TEMPLATE, "subGroupPolicy": {"type": "object"},
            },
        },
    },
}
REPLICA_SPEC = {"type": "object", "required": ["template"], "additionalProperties": False,
                "properties": {"replicas": {"type": "integer", "minimum": 0},
                               "restartPolicy": {"enum": ["Always", "OnFailure", "Never", "ExitCode"]},
                               "template": POD_TEMPLATE}}
MPIJOB_SPEC = {
    "type": "object", "required": ["mpiReplicaSpecs"], "additionalProperties": False,
    "properties": {
        "slotsPerWorker": {"type": "integer", "minimum": 1},
        "mpiImplementation": {"enum": ["OpenMPI", "Intel", "MPICH"]},
        "sshAuthMountPath": {"type": "string"},
        "launcherCreationPolicy": {"enum": ["AtStartup", "WaitForWorkersReady"]},
        "runLauncherAsWorker": {"type": "boolean"},
        "runPolicy": {"type": "object", "additionalProperties": False, "properties": {
            "cleanPodPolicy": {"enum": ["None", "Running", "All"]}, "backoffLimit": {"type": "integer", "minimum": 0},
            "activeDeadlineSeconds": {"type": "integer"}, "ttlSecondsAfterFinished": {"type": "integer"},
            "schedulingPolicy": {"type": "object"}, "suspend": {"type": "boolean"}, "managedBy": {"type": "string"}}},
        "mpiReplicaSpecs": {"type": "object", "required": ["Launcher", "Worker"], "additionalProperties": False,
                            "properties": {"Launcher": REPLICA_SPEC, "Worker": REPLICA_SPEC}},
    },
}
CUSTOM_SPECS = {
    ("monitoring.coreos.com/v1", "PodMonitor"): POD_MONITOR_SPEC,
    ("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICE_MONITOR_SPEC,
    ("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet"): LWS_SPEC,
    ("kubeflow.org/v2beta1", "MPIJob"): MPIJOB_SPEC,
}
CORE_KINDS = {("v1", "ConfigMap"), ("v1", "Service")}


class Invalid(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Invalid(message)


def validate_core(doc):
    try:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        path = "/".join(str(p) for p in e.path)
        raise Invalid(f"{doc['kind']}/{doc.get('metadata', {}).get('name')}: {path}: {e.message}")


def check_pod_template(template, where):
    """A pod template against the Pod schema, plus the cross references inside it."""
    validate_core({"apiVersion": "v1", "kind": "Pod", "metadata": template.get("metadata") or {"name": "template"},
                   "spec": template["spec"]})
    volumes = {v["name"]: v for v in template["spec"].get("volumes", [])}
    for c in template["spec"]["containers"]:
        ports = {p.get("name") for p in c.get("ports", [])}
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            p = c.get(probe) or {}
            port = (p.get("httpGet") or p.get("tcpSocket") or {}).get("port")
            if isinstance(port, str):
                check(port in ports, f"{where}: {c['name']}.{probe} names port '{port}', which the container does not declare")
        for m in c.get("volumeMounts", []):
            check(m["name"] in volumes, f"{where}: {c['name']} mounts volume '{m['name']}', which the pod does not define")
            if m["mountPath"] == "/dev/shm":
                check((volumes[m["name"]].get("emptyDir") or {}).get("medium") == "Memory",
                      f"{where}: /dev/shm must be an emptyDir with medium Memory")
        resources = c.get("resources", {})
        limits, requests = resources.get("limits", {}), resources.get("requests", {})
        if "nvidia.com/gpu" in requests or "nvidia.com/gpu" in limits:
            check(str(requests.get("nvidia.com/gpu")) == str(limits.get("nvidia.com/gpu")),
                  f"{where}: {c['name']} must request as many GPUs as its limit")


def pod_templates(doc):
    if doc["kind"] == "LeaderWorkerSet":
        t = doc["spec"]["leaderWorkerTemplate"]
        return [x for x in (t.get("leaderTemplate"), t.get("workerTemplate")) if x]
    if doc["kind"] == "MPIJob":
        # The operator labels its pods; these are the labels a selector may use on them.
        out = []
        for role, r in doc["spec"]["mpiReplicaSpecs"].items():
            metadata = dict(r["template"].get("metadata") or {})
            metadata["labels"] = {**metadata.get("labels", {}), "training.kubeflow.org/job-name": doc["metadata"]["name"],
                                  "training.kubeflow.org/job-role": role.lower(),
                                  "training.kubeflow.org/replica-index": "0"}
            out.append({**r["template"], "metadata": metadata})
        return out
    return []


def validate(doc):
    where = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key in CORE_KINDS:
        validate_core(doc)
    elif key in CUSTOM_SPECS:
        errors = sorted(jsonschema.Draft202012Validator(CUSTOM_SPECS[key]).iter_errors(doc.get("spec")),
                        key=lambda e: list(e.path))
        check(not errors, where + ": " + "; ".join(f"spec/{'/'.join(map(str, e.path))}: {e.message}" for e in errors))
    else:
        raise Invalid(f"{where}: no schema for {key[0]} {key[1]}")
    for t in pod_templates(doc):
        check_pod_template(t, where)


def selects(selector, labels):
    return all((labels or {}).get(k) == v for k, v in selector.items())


def validate_file(path):
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    for doc in docs:
        validate(doc)
        print(f"{path}: {doc['apiVersion']} {doc['kind']} {doc['metadata']['name']}: valid")
    templates = [t for doc in docs for t in pod_templates(doc)]
    for doc in docs:
        selector = (doc["spec"].get("selector") if doc["kind"] == "Service"
                    else doc["spec"]["selector"].get("matchLabels") if doc["kind"] == "PodMonitor" else None)
        if selector is None:
            continue
        check(any(selects(selector, (t.get("metadata") or {}).get("labels")) for t in templates),
              f"{doc['kind']}/{doc['metadata']['name']}: selector {json.dumps(selector)} matches no pod template")
        if doc["kind"] == "Service":
            for p in doc["spec"]["ports"]:
                if isinstance(p.get("targetPort"), str):
                    check(any(selects(selector, (t.get("metadata") or {}).get("labels")) and
                              any(cp.get("name") == p["targetPort"] for c in t["spec"]["containers"]
                                  for cp in c.get("ports", []))
                              for t in templates),
                          f"Service/{doc['metadata']['name']}: targetPort '{p['targetPort']}' is no port of the selected pods")


def main():
    failed = False
    for path in sys.argv[1:]:
        try:
            validate_file(path)
        except Exception as e:  # any failure to validate is a finding, reported per file
            print(f"{path}: INVALID: {e}", file=sys.stderr)
            failed = True
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
