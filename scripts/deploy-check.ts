/**
 * Validates the Kubernetes manifests under deploy/ offline, against schemas taken from the Go module proxy (a
 * package registry, cached in .tools/gomod): the Kubernetes OpenAPI v3 documents of k8s.io/kubernetes and the
 * KEDA CRDs of github.com/kedacore/keda/v2, at pinned versions. Unknown fields are errors (as kubeconform's
 * strict mode), and KEDA `temporal` triggers may use only the metadata and auth parameters that KEDA version's
 * scaler reads. Cross-references are checked too: scale targets exist, task queues are fleetscore's.
 *
 * `npm run deploy:check` runs it; test/deploy runs it in CI.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import Ajv, { type ValidateFunction } from 'ajv';
import { parseAllDocuments } from 'yaml';
import { TASK_QUEUES } from '../lib/shared/names';
import { REPO_ROOT } from '../lib/temporal/temporal-cli';
import { messageOf } from '../lib/shared/errors';

/** Pinned schema sources (Go modules). */
export const SCHEMA_MODULES = {
  kubernetes: 'k8s.io/kubernetes@v1.33.4',
  keda: 'github.com/kedacore/keda/v2@v2.21.0',
} as const;

/** One problem in one manifest. */
export interface ManifestProblem {
  file: string;
  resource: string;
  message: string;
}

type Json = Record<string, unknown>;

/** Downloads (once) a Go module into .tools/gomod and returns its folder. */
export function goModuleDir(module: string, cache = join(REPO_ROOT, '.tools', 'gomod')): string {
  mkdirSync(cache, { recursive: true });
  const out = execFileSync('go', ['mod', 'download', '-json', module], {
    cwd: cache,
    env: { ...process.env, GOMODCACHE: cache, GOFLAGS: '-mod=mod', GO111MODULE: 'on' },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const info = JSON.parse(out) as { Dir?: string; Error?: string };
  if (!info.Dir || info.Error) throw new Error(`go mod download ${module}: ${info.Error ?? 'no folder'}`);
  return info.Dir;
}

/**
 * Closes every object schema that lists its properties (additionalProperties: false), so a misspelt field is an
 * error, except where Kubernetes says unknown fields are kept.
 */
function strict(schema: unknown): void {
  if (Array.isArray(schema)) return schema.forEach(strict);
  if (typeof schema !== 'object' || schema === null) return;
  const s = schema as Json;
  if (s.properties && s.additionalProperties === undefined && !s['x-kubernetes-preserve-unknown-fields']) {
    s.additionalProperties = false;
  }
  Object.values(s).forEach(strict);
}

/** The schemas, by `apiVersion/kind`, and the KEDA temporal scaler's parameter names. */
export interface DeploySchemas {
  validators: Map<string, ValidateFunction>;
  temporalMetadata: Set<string>;
  temporalAuthParams: Set<string>;
}

/** Reads the `keda:"name=…, order=…"` tags of KEDA's temporal scaler: which metadata and auth names it reads. */
export function temporalScalerParameters(source: string): { metadata: Set<string>; auth: Set<string> } {
  const metadata = new Set<string>();
  const auth = new Set<string>();
  for (const m of source.matchAll(/keda:"name=(\w+),\s*order=([\w;]+)/g)) {
    const [, name, order] = m as unknown as [string, string, string];
    if (order.includes('triggerMetadata')) metadata.add(name);
    if (order.includes('authParams')) auth.add(name);
    // resolvedEnv: the value may come from the scale target's environment, as `<name>FromEnv`.
    if (order.includes('resolvedEnv')) metadata.add(`${name}FromEnv`);
  }
  return { metadata, auth };
}

/** Loads the pinned schemas (downloading the modules on first use). */
export function loadDeploySchemas(): DeploySchemas {
  const ajv = new Ajv({ strict: false, validateFormats: false, allErrors: true });
  const validators = new Map<string, ValidateFunction>();
  const k8s = join(goModuleDir(SCHEMA_MODULES.kubernetes), 'api', 'openapi-spec', 'v3');
  for (const [file, group] of [
    ['api__v1_openapi.json', 'io.k8s.api.core.v1'],
    ['apis__apps__v1_openapi.json', 'io.k8s.api.apps.v1'],
  ] as const) {
    const doc = JSON.parse(readFileSync(join(k8s, file), 'utf8')) as { components: { schemas: Json } };
    strict(doc.components.schemas);
    ajv.addSchema(doc, file);
    const apiVersion = group === 'io.k8s.api.core.v1' ? 'v1' : 'apps/v1';
    for (const kind of ['ConfigMap', 'Secret', 'Service', 'ServiceAccount', 'Deployment']) {
      if (doc.components.schemas[`${group}.${kind}`]) {
        validators.set(`${apiVersion}/${kind}`, ajv.getSchema(`${file}#/components/schemas/${group}.${kind}`)!);
      }
    }
  }
  const keda = goModuleDir(SCHEMA_MODULES.keda);
  for (const crd of ['keda.sh_scaledobjects.yaml', 'keda.sh_triggerauthentications.yaml']) {
    const doc = parseAllDocuments(readFileSync(join(keda, 'config', 'crd', 'bases', crd), 'utf8'))[0]!.toJS() as {
      spec: { group: string; names: { kind: string }; versions: { name: string; schema: { openAPIV3Schema: Json } }[] };
    };
    for (const version of doc.spec.versions) {
      const schema = version.schema.openAPIV3Schema;
      strict(schema);
      validators.set(`${doc.spec.group}/${version.name}/${doc.spec.names.kind}`, ajv.compile(schema));
    }
  }
  const scaler = ['temporal_scaler.go', 'temporal.go']
    .map((f) => join(keda, 'pkg', 'scalers', f))
    .find((f) => existsSync(f));
  if (!scaler) throw new Error(`${SCHEMA_MODULES.keda} has no temporal scaler source`);
  const { metadata, auth } = temporalScalerParameters(readFileSync(scaler, 'utf8'));
  return { validators, temporalMetadata: metadata, temporalAuthParams: auth };
}

/** Checks every `*.yaml` under `dir` (default deploy/); returns the problems (none when valid). */
export function checkDeployManifests(schemas: DeploySchemas, dir = join(REPO_ROOT, 'deploy')): ManifestProblem[] {
  const problems: ManifestProblem[] = [];
  const files = readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => /\.ya?ml$/.test(f));
  if (files.length === 0) problems.push({ file: dir, resource: '-', message: 'no manifests found' });
  const queues = new Set<string>(Object.values(TASK_QUEUES));
  for (const file of files) {
    const path = join(dir, file);
    const name = relative(REPO_ROOT, path);
    const docs = parseAllDocuments(readFileSync(path, 'utf8'));
    const resources: Json[] = [];
    for (const doc of docs) {
      if (doc.errors.length) {
        problems.push({ file: name, resource: '-', message: `YAML: ${doc.errors[0]!.message}` });
        continue;
      }
      const r = doc.toJS() as Json | null;
      if (r) resources.push(r);
    }
    const byKind = (kind: string) =>
      new Set(resources.filter((r) => r.kind === kind).map((r) => (r.metadata as Json | undefined)?.name));
    const deployments = byKind('Deployment');
    const auths = byKind('TriggerAuthentication');
    for (const r of resources) {
      const id = `${String(r.kind)}/${String((r.metadata as Json | undefined)?.name)}`;
      const fail = (message: string) => problems.push({ file: name, resource: id, message });
      const validate = schemas.validators.get(`${String(r.apiVersion)}/${String(r.kind)}`);
      if (!validate) {
        fail(`no schema for ${String(r.apiVersion)} ${String(r.kind)}`);
        continue;
      }
      if (!validate(r)) {
        for (const e of validate.errors ?? []) {
          const extra = e.params && 'additionalProperty' in e.params ? ` "${String(e.params.additionalProperty)}"` : '';
          fail(`${e.instancePath || '/'} ${e.message ?? 'invalid'}${extra}`);
        }
      }
      if (r.kind === 'ScaledObject') {
        const spec = r.spec as { scaleTargetRef: { name: string }; triggers: Json[] };
        if (!deployments.has(spec.scaleTargetRef.name))
          fail(`scaleTargetRef ${spec.scaleTargetRef.name} is not in ${name}`);
        for (const t of spec.triggers.filter((t) => t.type === 'temporal')) {
          const meta = (t.metadata ?? {}) as Record<string, unknown>;
          for (const key of Object.keys(meta)) {
            if (!schemas.temporalMetadata.has(key)) fail(`temporal trigger: KEDA does not read metadata "${key}"`);
          }
          for (const key of Object.keys(meta)) {
            if (typeof meta[key] !== 'string') fail(`temporal trigger: metadata "${key}" must be a string`);
          }
          for (const required of ['endpoint', 'taskQueue']) {
            if (!meta[required] && !meta[`${required}FromEnv`]) fail(`temporal trigger: "${required}" is required`);
          }
          for (const q of [meta.taskQueue, meta.workflowTaskQueueForCount].filter(Boolean)) {
            if (!queues.has(String(q)))
              fail(`temporal trigger: task queue "${String(q)}" is not a fleetscore pool queue`);
          }
          const ref = (t.authenticationRef as Json | undefined)?.name;
          if (ref !== undefined && !auths.has(ref)) fail(`authenticationRef ${JSON.stringify(ref)} is not in ${name}`);
        }
      }
      if (r.kind === 'TriggerAuthentication') {
        for (const ref of ((r.spec as Json).secretTargetRef ?? []) as { parameter: string }[]) {
          if (!schemas.temporalAuthParams.has(ref.parameter)) {
            fail(`secretTargetRef parameter "${ref.parameter}" is not one the temporal scaler reads`);
          }
        }
      }
    }
  }
  return problems;
}

function run(): void {
  const problems = checkDeployManifests(loadDeploySchemas());
  for (const p of problems) process.stderr.write(`${p.file}: ${p.resource}: ${p.message}\n`);
  if (problems.length) throw new Error(`${problems.length} problem(s) in deploy/`);
  process.stdout.write(
    `deploy/: every manifest is valid (Kubernetes ${SCHEMA_MODULES.kubernetes.split('@')[1]}, KEDA ${SCHEMA_MODULES.keda.split('@')[1]})\n`,
  );
}

if (require.main === module) {
  try {
    run();
  } catch (err) {
    process.stderr.write(`deploy-check: ${messageOf(err)}\n`);
    process.exit(1);
  }
}
