/**
 * deploy/ against the Kubernetes and KEDA schemas of pinned versions (fetched once from the Go module proxy into
 * .tools/gomod), and proof that the check catches the mistakes it exists for.
 */
import { mkdir, mkdtemp, readFile, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  checkDeployManifests,
  loadDeploySchemas,
  temporalScalerParameters,
  type DeploySchemas,
} from '../../scripts/deploy-check';

jest.setTimeout(300_000);

let schemas: DeploySchemas;
let dir: string;

beforeAll(async () => {
  schemas = loadDeploySchemas();
  dir = await mkdtemp(join(tmpdir(), 'fleetscore-deploy-'));
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('every manifest under deploy/ is valid', () => {
  expect(checkDeployManifests(schemas)).toEqual([]);
});

test('KEDA’s temporal scaler parameters are read from its source', () => {
  expect([...schemas.temporalMetadata]).toEqual(
    expect.arrayContaining(['endpoint', 'taskQueue', 'targetQueueSize', 'queueTypes', 'includeRunningWorkflowCount']),
  );
  expect([...schemas.temporalAuthParams]).toEqual(expect.arrayContaining(['apiKey', 'cert', 'key', 'ca']));
  const { metadata, auth } = temporalScalerParameters(
    'A string `keda:"name=endpoint, order=triggerMetadata;resolvedEnv"`\nB string `keda:"name=apiKey, order=authParams;resolvedEnv, optional"`',
  );
  expect([...metadata].sort()).toEqual(['apiKeyFromEnv', 'endpoint', 'endpointFromEnv']);
  expect([...auth]).toEqual(['apiKey']);
});

test.each([
  ['a misspelt Deployment field', 'replicas: 0', 'replica: 0', /must NOT have additional properties "replica"/],
  ['a misspelt ScaledObject field', 'minReplicaCount: 0', 'minReplicas: 0', /additional properties "minReplicas"/],
  [
    'a number where KEDA wants a string',
    "targetQueueSize: '2'",
    'targetQueueSize: 2',
    /"targetQueueSize" must be a string/,
  ],
  ['metadata KEDA does not read', 'queueTypes: activity', 'queueType: activity', /does not read metadata "queueType"/],
  [
    'a task queue that is not a pool’s',
    'taskQueue: fleetscore-gpu',
    'taskQueue: fleetscore-gpus',
    /not a fleetscore pool queue/,
  ],
  [
    'a scale target that does not exist',
    'scaleTargetRef: { name: fleetscore-worker-gpu }',
    'scaleTargetRef: { name: gpu }',
    /scaleTargetRef gpu/,
  ],
  ['a wrong type', 'terminationGracePeriodSeconds: 360', "terminationGracePeriodSeconds: 'long'", /must be integer/],
])('catches %s', async (_what, from, to, expected) => {
  const source = await readFile(join(__dirname, '../../deploy/self-hosted/fleetscore.yaml'), 'utf8');
  expect(source).toContain(from);
  const sub = join(dir, String(Math.random()).slice(2));
  await mkdir(sub);
  await writeFile(join(sub, 'fleetscore.yaml'), source.replace(from, to));
  const problems = checkDeployManifests(schemas, sub);
  expect(problems.map((p) => p.message).join('\n')).toMatch(expected);
});
