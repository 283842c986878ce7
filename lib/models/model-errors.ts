/**
 * The errors of model artifacts: a model.json, model.onnx, package or index that cannot be used as given. None
 * is fixed by a retry: the same bytes fail the same way.
 */

/** Context carried by every model error, so a scoring log can say which device and file failed and where. */
export interface ModelErrorContext {
  device?: string | undefined;
  file: string;
  field?: string | undefined;
}

/** A model file that cannot be used as given, with where: device, file and model.json field. */
abstract class ModelFileError extends Error {
  public readonly device: string | undefined;
  public readonly file: string;
  public readonly field: string | undefined;
  constructor(message: string, context: ModelErrorContext, options?: { cause?: unknown }) {
    super(message, options);
    this.device = context.device;
    this.file = context.file;
    this.field = context.field;
  }
}

/**
 * A model artifact that cannot be used as given: not ONNX, a model.json that breaks the schema, names or feature
 * counts that do not match the graph, an unsafe package. Non-retryable: the same bytes fail the same way.
 */
export class InvalidModel extends ModelFileError {
  override readonly name = 'InvalidModel';
}

/** `models/index.json` exists but is not valid JSON or breaks its schema; every device's scoring depends on it. */
export class InvalidModelIndex extends ModelFileError {
  override readonly name = 'InvalidModelIndex';
}

/**
 * The bytes of a model.onnx do not hash to the sha256 recorded for them (in model.json, the index or a package).
 * Non-retryable: the stored artifact is corrupt or was replaced, and reading it again returns the same bytes.
 */
export class ModelChecksumMismatch extends Error {
  override readonly name = 'ModelChecksumMismatch';
  public readonly field = 'sha256';
  constructor(
    public readonly device: string | undefined,
    public readonly file: string,
    public readonly expected: string,
    public readonly actual: string,
    public readonly recordedIn: string,
  ) {
    const where = device ? `${file} (device ${device})` : file;
    super(`${where}: sha256 ${actual} does not match ${expected} recorded in ${recordedIn}`);
  }
}

/** A model version (or its model.json) that the index or a caller names does not exist in the store. */
export class ModelNotFound extends Error {
  override readonly name = 'ModelNotFound';
  public readonly field = 'version';
  constructor(
    public readonly device: string,
    public readonly file: string,
  ) {
    super(`device ${device}: no model at ${file}`);
  }
}

/** Registration found the version it was about to write already present: versions are immutable. */
export class ModelVersionExists extends Error {
  override readonly name = 'ModelVersionExists';
  public readonly field = 'version';
  constructor(
    public readonly device: string,
    public readonly file: string,
  ) {
    super(`device ${device}: ${file} already exists; model versions are immutable (is another registration running?)`);
  }
}
