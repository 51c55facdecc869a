// Validates rendered Kubernetes manifests (multi-document YAML files given as arguments):
//  * core kinds and every pod template against the Kubernetes OpenAPI schemas (npm
//    kubernetes-models), PodMonitor/ServiceMonitor against the Prometheus Operator CRD schemas
//    (npm @kubernetes-models/prometheus-operator);
//  * LeaderWorkerSet (leaderworkerset.x-k8s.io/v1) and MPIJob (kubeflow.org/v2beta1) spec fields
//    against Strata's own transcription of those CRDs' fields (no npm package ships them);
//  * cross references a schema cannot see: probe and Service ports name a container port,
//    volume mounts name a volume, GPU requests equal limits, /dev/shm is a memory emptyDir, and
//    each Service/PodMonitor selector matches some pod template.
// Prints one line per document and exits 1 on the first file with an error.
import { readFileSync } from "node:fs";
import Ajv from "ajv";
import { parseAllDocuments } from "yaml";
import { ConfigMap, Pod, Service } from "kubernetes-models/v1";
import { PodMonitor, ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";

const ajv = new Ajv({ allErrors: true, strict: false });
const podTemplate = { type: "object", required: ["spec"], properties: { metadata: { type: "object" }, spec: { type: "object" } }, additionalProperties: false };
const lwsSpec = ajv.compile({
  type: "object",
  required: ["leaderWorkerTemplate"],
  additionalProperties: false,
  properties: {
    replicas: { type: "integer", minimum: 0 },
    startupPolicy: { enum: ["LeaderCreated", "LeaderReady"] },
    rolloutStrategy: { type: "object" },
    networkConfig: { type: "object", properties: { subdomainPolicy: { enum: ["Shared", "UniquePerReplica"] } } },
    leaderWorkerTemplate: {
      type: "object",
      required: ["workerTemplate"],
      additionalProperties: false,
      properties: {
        size: { type: "integer", minimum: 1 },
        restartPolicy: { enum: ["RecreateGroupOnPodRestart", "RecreateGroupAfterStart", "None", "Default"] },
        leaderTemplate: podTemplate,
        workerTemplate: podTemplate,
        subGroupPolicy: { type: "object" },
      },
    },
  },
});
const replicaSpec = { type: "object", required: ["template"], additionalProperties: false, properties: { replicas: { type: "integer", minimum: 0 }, restartPolicy: { enum: ["Always", "OnFailure", "Never", "ExitCode"] }, template: podTemplate } };
const mpiJobSpec = ajv.compile({
  type: "object",
  required: ["mpiReplicaSpecs"],
  additionalProperties: false,
  properties: {
    slotsPerWorker: { type: "integer", minimum: 1 },
    mpiImplementation: { enum: ["OpenMPI", "Intel", "MPICH"] },
    sshAuthMountPath: { type: "string" },
    launcherCreationPolicy: { enum: ["AtStartup", "WaitForWorkersReady"] },
    runLauncherAsWorker: { type: "boolean" },
    runPolicy: {
      type: "object",
      additionalProperties: false,
      properties: {
        cleanPodPolicy: { enum: ["None", "Running", "All"] },
        backoffLimit: { type: "integer", minimum: 0 },
        activeDeadlineSeconds: { type: "integer" },
        ttlSecondsAfterFinished: { type: "integer" },
        schedulingPolicy: { type: "object" },
        suspend: { type: "boolean" },
        managedBy: { type: "string" },
      },
    },
    mpiReplicaSpecs: { type: "object", required: ["Launcher", "Worker"], additionalProperties: false, properties: { Launcher: replicaSpec, Worker: replicaSpec } },
  },
});

function check(cond, message) {
  if (!cond) throw new Error(message);
}

// A pod template against the Pod schema, plus the cross references inside it.
function checkPodTemplate(template, where) {
  new Pod({ metadata: template.metadata ?? {}, spec: template.spec }).validate();
  const volumes = new Map((template.spec.volumes ?? []).map((v) => [v.name, v]));
  for (const c of template.spec.containers) {
    const ports = new Set((c.ports ?? []).map((p) => p.name));
    for (const probe of ["readinessProbe", "livenessProbe", "startupProbe"]) {
      const p = c[probe];
      const port = p?.httpGet?.port ?? p?.tcpSocket?.port;
      if (typeof port === "string") check(ports.has(port), `${where}: ${c.name}.${probe} names port '${port}', which the container does not declare`);
    }
    for (const m of c.volumeMounts ?? []) {
      check(volumes.has(m.name), `${where}: ${c.name} mounts volume '${m.name}', which the pod does not define`);
      if (m.mountPath === "/dev/shm") check(volumes.get(m.name).emptyDir?.medium === "Memory", `${where}: /dev/shm must be an emptyDir with medium Memory`);
    }
    const limits = c.resources?.limits ?? {}, requests = c.resources?.requests ?? {};
    if ("nvidia.com/gpu" in requests || "nvidia.com/gpu" in limits)
      check(String(requests["nvidia.com/gpu"]) === String(limits["nvidia.com/gpu"]), `${where}: ${c.name} must request as many GPUs as its limit`);
  }
  return template;
}

function podTemplates(doc) {
  if (doc.kind === "LeaderWorkerSet") {
    const t = doc.spec.leaderWorkerTemplate;
    return [t.leaderTemplate, t.workerTemplate].filter(Boolean);
  }
  if (doc.kind === "MPIJob") {
    // The operator labels its pods; these are the labels a selector may use on them.
    return Object.entries(doc.spec.mpiReplicaSpecs).map(([role, r]) => ({
      ...r.template,
      metadata: {
        ...r.template.metadata,
        labels: { ...(r.template.metadata?.labels ?? {}), "training.kubeflow.org/job-name": doc.metadata.name, "training.kubeflow.org/job-role": role.toLowerCase(), "training.kubeflow.org/replica-index": "0" },
      },
    }));
  }
  return [];
}

function validate(doc) {
  const where = `${doc.kind}/${doc.metadata?.name}`;
  switch (`${doc.apiVersion} ${doc.kind}`) {
    case "v1 ConfigMap": new ConfigMap(doc).validate(); break;
    case "v1 Service": new Service(doc).validate(); break;
    case "monitoring.coreos.com/v1 PodMonitor": new PodMonitor(doc).validate(); break;
    case "monitoring.coreos.com/v1 ServiceMonitor": new ServiceMonitor(doc).validate(); break;
    case "leaderworkerset.x-k8s.io/v1 LeaderWorkerSet":
      check(lwsSpec(doc.spec), `${where}: ${ajv.errorsText(lwsSpec.errors)}`);
      break;
    case "kubeflow.org/v2beta1 MPIJob":
      check(mpiJobSpec(doc.spec), `${where}: ${ajv.errorsText(mpiJobSpec.errors)}`);
      break;
    default:
      throw new Error(`${where}: no schema for ${doc.apiVersion} ${doc.kind}`);
  }
  for (const t of podTemplates(doc)) checkPodTemplate(t, where);
}

function selects(selector, labels) {
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

let failed = false;
for (const file of process.argv.slice(2)) {
  try {
    const docs = parseAllDocuments(readFileSync(file, "utf8")).map((d) => {
      if (d.errors.length) throw new Error(`YAML: ${d.errors[0].message}`);
      return d.toJS();
    }).filter(Boolean);
    for (const doc of docs) {
      validate(doc);
      console.log(`${file}: ${doc.apiVersion} ${doc.kind} ${doc.metadata.name}: valid`);
    }
    const templates = docs.flatMap(podTemplates);
    for (const doc of docs) {
      const selector = doc.kind === "Service" ? doc.spec.selector : doc.kind === "PodMonitor" ? doc.spec.selector.matchLabels : null;
      if (selector) check(templates.some((t) => selects(selector, t.metadata?.labels)), `${doc.kind}/${doc.metadata.name}: selector ${JSON.stringify(selector)} matches no pod template`);
      if (doc.kind === "Service")
        for (const p of doc.spec.ports)
          if (typeof p.targetPort === "string")
            check(templates.some((t) => selects(selector, t.metadata?.labels) && t.spec.containers.some((c) => (c.ports ?? []).some((cp) => cp.name === p.targetPort))), `Service/${doc.metadata.name}: targetPort '${p.targetPort}' is no port of the selected pods`);
    }
  } catch (e) {
    console.error(`${file}: INVALID: ${e.message}`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
