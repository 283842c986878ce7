/**
 * fleetscore's one error model. Every error fleetscore throws is a class in this file and extends one of three
 * bases, one per consequence:
 * - {@link DeviceError} (`scope: 'device'`, not retryable): one device's data or model is bad; the scoring loop
 *   records the device as failed with the reason and scores the rest of its shard.
 * - {@link PermanentError} (`scope: 'run'`, not retryable): the unit of work (an activity, a command) cannot
 *   succeed as given; activities raise it as a non-retryable ApplicationFailure so Temporal stops at once.
 * - {@link TransientError} (`scope: 'run'`, retryable): the environment failed (a store outage); a retry can help.
 *
 * Inside a worker these are classified with `instanceof`; across the workflow boundary by `failure.type`, which
 * is the class name. The workflow's retry policies derive their non-retryable types from this file
 * (lib/shared/error-types.ts), so a new class cannot be misfiled: it must pick a base. No Node imports: the
 * workflow imports this module. It is longer than most files on purpose: every class in one place is what lets a
 * reader (and test/shared/errors.test.ts) see the whole model at once.
 */

/** Which unit an error fails: one device (the rest of its shard is scored) or the whole unit of work. */
export type ErrorScope = 'device' | 'run';

/** Where an error is: the device, the file (store key or path) and the field, as narrowly as known. */
export interface ErrorContext {
  device?: string | undefined;
  file?: string | undefined;
  field?: string | undefined;
}

/**
 * The message of any thrown value: an Error's message (one from another realm too, such as Node's own errors under
 * jest), or the value as a string.
 */
export function messageOf(err: unknown): string {
  const message = (err as { message?: unknown } | null | undefined)?.message;
  return typeof message === 'string' ? message : String(err);
}

/** The code of a failed system call (`ENOENT`, `EEXIST`, ...), when `err` is one. */
export function errnoCode(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | null | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** The base of every fleetscore error: its name is its class's name, and it says what it fails and if a retry helps. */
export abstract class FleetscoreError extends Error {
  readonly device: string | undefined;
  readonly file: string | undefined;
  readonly field: string | undefined;

  constructor(message: string, context: ErrorContext = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.device = context.device;
    this.file = context.file;
    this.field = context.field;
  }

  /** What this error fails: one device, or the unit of work (activity, command) that met it. */
  abstract get scope(): ErrorScope;
  /** Whether trying the same work again can succeed. */
  abstract get retryable(): boolean;
}

/** One device's data or model cannot be scored; the device fails with the reason, its shard goes on. */
export abstract class DeviceError extends FleetscoreError {
  get scope(): ErrorScope {
    return 'device';
  }
  get retryable(): boolean {
    return false;
  }
}

/** The work cannot succeed as given (bad input, a corrupt plan, a refused setting): never retried. */
export abstract class PermanentError extends FleetscoreError {
  get scope(): ErrorScope {
    return 'run';
  }
  get retryable(): boolean {
    return false;
  }
}

/** The environment failed (a store request, a missing object that may yet appear): a retry can help. */
export abstract class TransientError extends FleetscoreError {
  get scope(): ErrorScope {
    return 'run';
  }
  get retryable(): boolean {
    return true;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Device errors

/** A device id, version or other path segment that would be unsafe in a key. */
export class InvalidPathSegment extends DeviceError {
  constructor(
    field: string,
    public readonly value: string,
  ) {
    super(
      `invalid ${field} ${JSON.stringify(value)}: use 1-128 characters of letters, digits, '.', '_' and '-', ` +
        `starting with a letter or digit`,
      { field },
    );
  }
}

/** Where an aggregates problem is: the part's key, and the device, field and row time when that narrow. */
export interface AggregatesErrorContext extends ErrorContext {
  file: string;
  /** Epoch ms of the first bad row. */
  ts?: number | undefined;
}

/**
 * Aggregates that cannot be scored. `file` is the part's store key; `device`, `field` and `ts` are set when the
 * problem is that narrow. The same bytes fail the same way.
 */
export class InvalidAggregates extends DeviceError {
  declare readonly file: string;
  readonly ts: number | undefined;
  constructor(message: string, context: AggregatesErrorContext, options?: { cause?: unknown }) {
    const { file, device } = context;
    super(`${file}: ${device === undefined ? '' : `device ${device}: `}${message}`, context, options);
    this.ts = context.ts;
  }
}

/**
 * A model artifact that cannot be used as given: not ONNX, a model.json that breaks the schema, names or feature
 * counts that do not match the graph, an unsafe package. The same bytes fail the same way.
 */
export class InvalidModel extends DeviceError {}

/** The bytes of a model.onnx do not hash to the sha256 recorded for them: corrupt or replaced in the store. */
export class ModelChecksumMismatch extends DeviceError {
  constructor(
    device: string | undefined,
    file: string,
    public readonly expected: string,
    public readonly actual: string,
    public readonly recordedIn: string,
  ) {
    const where = device ? `${file} (device ${device})` : file;
    super(`${where}: sha256 ${actual} does not match ${expected} recorded in ${recordedIn}`, {
      device,
      file,
      field: 'sha256',
    });
  }
}

/** A model version (or its model.json) that the index or a caller names does not exist in the store. */
export class ModelNotFound extends DeviceError {
  constructor(device: string, file: string) {
    super(`device ${device}: no model at ${file}`, { device, file, field: 'version' });
  }
}

/** The model's output does not have one finite score per row where model.json says it is. */
export class ModelOutputMismatch extends DeviceError {
  constructor(message: string, device: string, file: string, field: string) {
    super(`${file}: ${message}`, { device, file, field });
  }
}

/** onnxruntime could not create a session for the model (unsupported operator, execution provider missing). */
export class ModelSessionFailed extends DeviceError {
  constructor(device: string, file: string, cause: unknown) {
    super(`${file}: onnxruntime cannot create a session: ${messageOf(cause)}`, { device, file }, { cause });
  }
}

/**
 * onnxruntime refused to run the model on the device's rows: the graph's input shape or type does not match
 * model.json (e.g. a different feature count). The same rows fail the same way.
 */
export class ModelInferenceFailed extends DeviceError {
  constructor(device: string, file: string, cause: unknown) {
    super(
      `${file}: onnxruntime cannot run the model on this device's rows: ${messageOf(cause)}`,
      { device, file, field: 'input' },
      { cause },
    );
  }
}

/**
 * The compiled fast path cannot evaluate a model's graph exactly (an operator, attribute or shape it does not
 * implement). Compiling turns it into a refusal and the model keeps its own onnxruntime session; were it ever to
 * escape while scoring, it concerns that device's model alone.
 */
export class UnsupportedGraph extends DeviceError {}

// ---------------------------------------------------------------------------------------------------------------
// Permanent errors

/** Workflow or command input that cannot name a run: a missing store, a bad shard size. */
export class InvalidInput extends PermanentError {}

/** A window id or time that cannot name a window. */
export class InvalidWindow extends PermanentError {
  constructor(
    message: string,
    public readonly value: string,
  ) {
    super(message, { field: 'window' });
  }
}

/**
 * A window that has not ended, or ended less than its settle time ago: scoring it now would commit rows that are
 * still to come. Names the window and when it becomes scoreable.
 */
export class WindowNotComplete extends PermanentError {
  constructor(
    public readonly window: string,
    public readonly endsAt: string,
    public readonly scoreableAt: string,
    settle: string,
  ) {
    super(
      `window ${window} is not complete: it ends at ${endsAt} and, with a settle time of ${settle}, becomes ` +
        `scoreable at ${scoreableAt}`,
      { field: 'window' },
    );
  }
}

/**
 * A window's input did not arrive within the run's input wait: no part (or no completion marker, when the run
 * asks for one) under the store prefixes named. The window is not committed: "no data" for the whole fleet would
 * hide a late upload, a wrong store or a wrong prefix.
 */
export class InputMissing extends PermanentError {
  constructor(
    public readonly window: string,
    public readonly missing: readonly string[],
    what: string,
    waited: string,
  ) {
    super(`no input for window ${window} after waiting ${waited}: ${what} missing under ${missing.join(', ')}`, {
      file: missing[0],
      field: 'input',
    });
  }
}

/** An environment variable fleetscore reads holds a value it cannot use; `field` names the variable. */
export class InvalidConfig extends PermanentError {}

/** A key that could escape the store's root: absolute, empty segments, `.`/`..`, backslashes. */
export class InvalidKey extends PermanentError {
  constructor(
    public readonly store: string,
    public readonly key: string,
  ) {
    super(`${store}: invalid object key ${JSON.stringify(key)}`, { file: key });
  }
}

/** A plan, status or manifest file that is missing or not what fleetscore wrote. */
export class InvalidPlan extends PermanentError {
  constructor(message: string, file: string) {
    super(`${file}: ${message}`, { file });
  }
}

/** `models/index.json` exists but is not valid JSON or breaks its schema; every device's scoring depends on it. */
export class InvalidModelIndex extends PermanentError {}

/** Registration found the version it was about to write already present: versions are immutable. */
export class ModelVersionExists extends PermanentError {
  constructor(device: string, file: string) {
    super(`device ${device}: ${file} already exists; model versions are immutable (is another registration running?)`, {
      device,
      file,
      field: 'version',
    });
  }
}

/** A folder entry or list line that bulk registration (`models register --dir/--list`) cannot take as a model. */
export class InvalidModelSource extends PermanentError {
  constructor(message: string, file: string) {
    super(`${file}: ${message}`, { file });
  }
}

/**
 * One model of a bulk registration whose own files could not be read or parsed (a missing model.onnx, a package
 * that is not a tar.gz): that model fails with the reader's message and field, the others are registered.
 */
export class ModelSourceUnreadable extends PermanentError {
  constructor(cause: unknown) {
    const { message, field } = (cause ?? {}) as { message?: unknown; field?: unknown };
    super(
      typeof message === 'string' ? message : String(cause),
      { field: typeof field === 'string' ? field : undefined },
      {
        cause,
      },
    );
  }
}

/** Bytes that are not a predictions file, or columns that do not fit together. */
export class InvalidPredictions extends PermanentError {
  constructor(message: string, file?: string, field?: string, options?: { cause?: unknown }) {
    super(file === undefined ? message : `${file}: ${message}`, { file, field }, options);
  }
}

/** The gpu pool cannot use CUDA and falling back to CPU was not allowed. */
export class CudaUnavailable extends PermanentError {}

/** No worker of a shard's pool started it within the pool-wait limit: the shard's devices fail. */
export class PoolUnavailable extends PermanentError {}

/** A schedules file that cannot be loaded; `cause` (printed by the CLI) holds what the module itself threw. */
export class InvalidScheduleFile extends PermanentError {
  constructor(file: string, problem: string, options?: { cause?: unknown }) {
    super(`schedules file ${file} ${problem}`, { file }, options);
  }
}

/** One problem of a schedule declaration: the schedule, the field and what is wrong. */
export interface ScheduleIssue {
  scheduleId: string;
  field: string;
  message: string;
}

/** A declaration that cannot be applied; `issues` name the schedule and field of each problem, `file` its source. */
export class InvalidScheduleDeclaration extends PermanentError {
  constructor(
    public readonly issues: readonly ScheduleIssue[],
    file?: string,
  ) {
    super(
      `invalid schedule declaration${file === undefined ? '' : ` in ${file}`}:\n` +
        issues.map((i) => `  schedule "${i.scheduleId}" ${i.field}: ${i.message}`).join('\n'),
      { file, field: issues[0]?.field },
    );
  }
}

/** One bad command-line option or argument: as the user typed it (`--limit`, `WINDOW`) and what is wrong with it. */
export interface ArgumentIssue {
  argument: string;
  message: string;
}

/** A command line that cannot run; the CLI prints each issue and where the command's usage is. */
export class InvalidArguments extends PermanentError {
  constructor(
    /** The command as typed before its options, e.g. `fleetscore runs show`. */
    public readonly command: string,
    public readonly issues: readonly ArgumentIssue[],
  ) {
    super(issues.map((i) => `${i.argument}: ${i.message}`).join('\n'), { field: issues[0]?.argument });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Transient errors

/** The parts of a Temporal target a connection failure names (no credentials). */
export interface TargetDescription {
  address: string;
  namespace: string;
  /** Where each came from, in words: `TEMPORAL_ADDRESS`, `profile "prod" of …`, `the default`. */
  source: { address: string; namespace: string };
}

/** No Temporal frontend answered at the target; the message says where, why, and what to do. */
export class TemporalUnreachable extends TransientError {
  readonly address: string;
  readonly namespace: string;
  constructor(target: TargetDescription, why: string) {
    const { address, namespace, source } = target;
    const sources =
      source.address === source.namespace
        ? `both from ${source.address}`
        : `address from ${source.address}, namespace from ${source.namespace}`;
    super(
      `cannot reach Temporal at ${address} (namespace ${namespace}; ${sources}): ${why}.\n` +
        `  Start a local dev server with \`npm start\`, or point TEMPORAL_ADDRESS and TEMPORAL_NAMESPACE (or ` +
        `TEMPORAL_PROFILE) at your cluster; docs/operations.md, "Connecting to Temporal"`,
    );
    this.address = address;
    this.namespace = namespace;
  }
}

/** `ObjectStore.get` found no object at a key (it may yet be written: a retry can see it). */
export class ObjectNotFound extends TransientError {
  constructor(
    public readonly store: string,
    public readonly key: string,
  ) {
    super(`${store}: no object at ${key}`, { file: key });
  }
}

/**
 * A write could not get its turn: the local store's lock stayed held by a live writer too long, or a commit lost
 * the race to other commits again and again. A retry can succeed.
 */
export class StoreContended extends TransientError {}

/**
 * The GPU ran out of memory or handles while onnxruntime created or ran a device's session (CUDA's "out of
 * memory", cuBLAS's or cuDNN's failed allocations), even after the worker released its idle sessions: the
 * worker's state, not the device's model, so the shard attempt fails and is retried rather than failing the
 * device; the gpu pool keeps few sessions (GPU_MAX_SESSIONS).
 */
export class GpuResourcesExhausted extends TransientError {
  constructor(device: string, file: string, cause: unknown) {
    super(
      `${file}: the GPU ran out of memory or handles for this device's session (the shard is retried; a worker ` +
        `whose models do not fit keeps fewer sessions with --max-sessions or FLEETSCORE_MAX_SESSIONS): ` +
        messageOf(cause),
      { device, file },
      { cause },
    );
  }
}

/** An S3 request failed for a reason other than a missing object; names the bucket and the full key. */
export class S3RequestFailed extends TransientError {
  constructor(
    public readonly operation: string,
    public readonly bucket: string,
    public readonly objectKey: string,
    cause: unknown,
  ) {
    super(`S3 ${operation} s3://${bucket}/${objectKey} failed: ${explainS3(cause)}`, { file: objectKey }, { cause });
  }
}

/**
 * An S3 request the server refused for a reason no retry changes: the bucket does not exist, the credentials are
 * refused (AccessDenied, InvalidAccessKeyId, SignatureDoesNotMatch), or the bucket lives in another region. Never
 * retried, so a wrong bucket or key fails the run at once instead of after minutes of retries. Expired temporary
 * credentials are not among them: the SDK's credential chain renews those, so a retry can succeed.
 */
export class S3RequestRefused extends PermanentError {
  constructor(
    public readonly operation: string,
    public readonly bucket: string,
    public readonly objectKey: string,
    cause: unknown,
  ) {
    super(`S3 ${operation} s3://${bucket}/${objectKey} refused: ${explainS3(cause)}`, { file: objectKey }, { cause });
  }
}

/** An AWS SDK error as its name, HTTP status and message. */
function explainS3(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const e = err as Error & { code?: string; $metadata?: { httpStatusCode?: number } };
  const status = e.$metadata?.httpStatusCode;
  const what = e.message || e.code || 'no message';
  return `${e.name}${status === undefined ? '' : ` (HTTP ${status})`}: ${what}`;
}
