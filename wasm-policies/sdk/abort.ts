/**
 * The compiler's `abort` (failed assertion, out-of-bounds access, out of memory...) routed to Extism:
 * admission refuses AssemblyScript's default `env.abort` import, so the build passes
 * `--use abort=policyAbort`. The function is `@global` so that name resolves however a policy's files
 * are laid out (a policy outside this repository imports the SDK by another relative path). The
 * message becomes the call's error and an error log line, then the instance traps; the host discards
 * a trapped instance.
 */
import { error_set, log_error } from "@extism/as-pdk/lib/env";
import { storeString } from "./kernel";

// @ts-ignore: decorator
@global
export function policyAbort(
  message: string | null = null,
  fileName: string | null = null,
  line: u32 = 0,
  column: u32 = 0,
): void {
  // A second abort while reporting the first (say, out of memory) must not recurse. The flag is a
  // static byte, not a global: abort may be compiled before this file's globals are declared.
  const aborting = memory.data(1);
  if (load<u8>(aborting) == 0) {
    store<u8>(aborting, 1);
    let text = "policy aborted: " + (message != null ? message : "(no message)");
    if (fileName != null) text += " at " + fileName + ":" + line.toString() + ":" + column.toString();
    const offset = storeString(text);
    log_error(offset);
    error_set(offset);
  }
  unreachable();
}
