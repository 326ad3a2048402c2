/**
 * The bundled default teacher, `data/brown-llama-6m` (see its PROVENANCE.md): used by the CLI and the
 * notebooks when no model directory is given.
 *
 * @module
 */
import { fileURLToPath } from "node:url";

/** Absolute path of the bundled brown-llama-6m checkpoint directory. */
export const DEFAULT_MODEL_DIR: string = fileURLToPath(new URL("../../data/brown-llama-6m", import.meta.url));
