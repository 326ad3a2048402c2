/**
 * A small flag parser for the `lab` CLI: `--name value`, `--name=value` and boolean `--flag`, checked
 * against a spec so that a typo is an error, not a silently ignored flag.
 *
 * @module
 */
import { UsageError } from "../errors.ts";

/** Kinds of flag values. */
export type FlagKind = "string" | "number" | "boolean";

/** A command's flags: name (without dashes) → kind. */
export type FlagSpec = Record<string, FlagKind>;

/** Parsed flag values. */
export type Flags = Record<string, string | number | boolean | undefined>;

/** Parses `args` against `spec`; throws {@linkcode UsageError} on unknown flags or bad values. */
export function parseFlags(command: string, args: string[], spec: FlagSpec): Flags {
  const out: Flags = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (!arg.startsWith("--")) throw new UsageError(command, `unexpected argument "${arg}"`);
    const eq = arg.indexOf("=");
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    const kind = spec[name];
    if (!kind) {
      const known = Object.keys(spec).map((k) => `--${k}`).join(", ");
      throw new UsageError(command, `unknown flag --${name} (known: ${known})`);
    }
    if (kind === "boolean") {
      if (eq >= 0) throw new UsageError(command, `--${name} takes no value`);
      out[name] = true;
      continue;
    }
    const value = eq >= 0 ? arg.slice(eq + 1) : args[++i];
    if (value === undefined) throw new UsageError(command, `--${name} needs a value`);
    if (kind === "number") {
      const n = Number(value);
      if (value.trim() === "" || !Number.isFinite(n)) {
        throw new UsageError(command, `--${name} must be a number, got "${value}"`);
      }
      out[name] = n;
    } else {
      out[name] = value;
    }
  }
  return out;
}

/** The string value of a required flag. */
export function required(command: string, flags: Flags, name: string): string {
  const v = flags[name];
  if (typeof v !== "string" || v === "") throw new UsageError(command, `--${name} is required`);
  return v;
}

/** A numeric flag that must be a whole number ≥ `min`, or its default. */
export function intFlag(command: string, flags: Flags, name: string, fallback: number, min = 1): number {
  const v = flags[name] ?? fallback;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min) {
    throw new UsageError(command, `--${name} must be a whole number ≥ ${min}, got ${v}`);
  }
  return v;
}
