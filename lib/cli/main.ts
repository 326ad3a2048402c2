/**
 * `deno task lab <command>`: the command-line entry of the toolkit.
 *
 * Expected errors (bad files, bad flags, no GPU) print one line `error: …` on stderr and exit with
 * code 2; anything else is a bug and keeps its stack trace.
 *
 * @module
 */
import { LabError, UsageError } from "../errors.ts";
import {
  convertCommand,
  demoCommand,
  evalCommand,
  generateCommand,
  gradsCommand,
  logitsCommand,
} from "./commands.ts";
import { kernelCommand } from "./kernel_command.ts";
import { mixingCommand } from "./mixing_command.ts";
import { DISTILL_USAGE, distillCommand } from "./distill_command.ts";

const commands: Record<string, { run: (args: string[]) => Promise<void>; usage: string }> = {
  logits: {
    run: logitsCommand,
    usage: "logits --model DIR --input FILE --out FILE [--hidden] [--attentions]",
  },
  eval: { run: evalCommand, usage: "eval --model DIR [--ids FILE] [--seq N] [--windows N] [--json]" },
  generate: {
    run: generateCommand,
    usage: "generate --model DIR --prompt TEXT [--max-tokens N] [--temperature T] [--top-p P] [--seed S] " +
      "[--draft DIR --lookahead K] [--json]",
  },
  grads: { run: gradsCommand, usage: "grads --model DIR --input FILE --out FILE" },
  convert: {
    run: convertCommand,
    usage: "convert --teacher DIR --out DIR (--attention-share S | --attention-layers LIST) [--mamba 1|2] " +
      "[--init attention|random|linear-attention] [--seed N] [--blocks reference|heads] [--d-state N]",
  },
  kernel: {
    run: kernelCommand,
    usage: "kernel selective-scan --input FILE --out FILE | kernel ssd --input FILE --out FILE [--block N]",
  },
  distill: {
    run: async (a) => {
      await distillCommand(a);
    },
    usage: DISTILL_USAGE,
  },
  mixing: {
    run: mixingCommand,
    usage: "mixing --model DIR --input FILE --layer L --out FILE [--html FILE]",
  },
  demo: { run: demoCommand, usage: "demo [--model DIR] [--out DIR] [--tokens N] [--windows N]" },
};

/** Usage text listing every command. */
export function usage(): string {
  return ["usage: deno task lab <command> [flags]", ...Object.values(commands).map((c) => `  ${c.usage}`)]
    .join("\n");
}

/** Runs the CLI with `args`; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  if (!name || name === "--help" || name === "help") {
    console.log(usage());
    return name ? 0 : 2;
  }
  try {
    const cmd = commands[name];
    if (!cmd) throw new UsageError("lab", `unknown command "${name}"\n${usage()}`);
    await cmd.run(rest);
    return 0;
  } catch (e) {
    if (e instanceof LabError) {
      console.error(`error: ${e.message}`);
      return 2;
    }
    throw e;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
