/**
 * Typed errors of the toolkit. Every error a user can cause (a bad file, a wrong shape, a missing GPU)
 * is a subclass of {@linkcode LabError}, carries the place it concerns (`where`: a file path, a tensor
 * name, an op) and a one-line message. The CLI prints `error: <message>` on stderr and exits with 2
 * for these; anything else is a bug and keeps its stack trace.
 *
 * @module
 */

/** Base class of all expected, user-facing errors. `where` names the file, tensor or op concerned. */
export class LabError extends Error {
  /** The file path, tensor name or op the error concerns. */
  readonly where: string;
  /** Builds an error whose message reads `<where>: <reason>`. */
  constructor(where: string, reason: string, options?: ErrorOptions) {
    super(where ? `${where}: ${reason}` : reason, options);
    this.name = new.target.name;
    this.where = where;
  }
}

/** A safetensors file is malformed: truncated, bad header, bad offsets, unknown dtype, size mismatch. */
export class SafetensorsError extends LabError {}

/** A checkpoint directory is unusable: missing files, a missing tensor, a shard path outside the directory. */
export class CheckpointError extends LabError {}

/** A `config.json` (or another JSON config) is malformed or lacks a required field. */
export class ConfigError extends LabError {}

/** Tensor shapes or dtypes do not fit an op. */
export class ShapeError extends LabError {}

/** No WebGPU adapter or device could be obtained, the device was lost, or a GPU limit was exceeded. */
export class GpuError extends LabError {}

/** A data file (corpus, JSONL, ids) is malformed or missing. */
export class DataError extends LabError {}

/** The command line is wrong: an unknown command, a missing or malformed flag. */
export class UsageError extends LabError {}

/** A training run had to stop (a non-finite loss); the message names the last good checkpoint. */
export class TrainingError extends LabError {}
