/**
 * WebAssembly text to binary for tests, through wabt (a devDependency: production code never parses
 * text). Features default to everything the policy sandbox accepts.
 */
import wabtInit from "wabt";

export interface WatFeatures {
  exceptions?: boolean;
  mutable_globals?: boolean;
  sat_float_to_int?: boolean;
  sign_extension?: boolean;
  simd?: boolean;
  threads?: boolean;
  function_references?: boolean;
  multi_value?: boolean;
  tail_call?: boolean;
  bulk_memory?: boolean;
  reference_types?: boolean;
  annotations?: boolean;
  code_metadata?: boolean;
  gc?: boolean;
  memory64?: boolean;
  multi_memory?: boolean;
  extended_const?: boolean;
  relaxed_simd?: boolean;
}

export const SANDBOX_FEATURES: WatFeatures = {
  mutable_globals: true,
  sat_float_to_int: true,
  sign_extension: true,
  simd: true,
  multi_value: true,
  tail_call: true,
  bulk_memory: true,
  reference_types: true,
  extended_const: true,
  relaxed_simd: true,
};

let wabt: Awaited<ReturnType<typeof wabtInit>> | undefined;

/** Compiles WAT to a binary module (with its `name` section, as a toolchain's debug build would). */
export const compileWat = async (
  source: string,
  features: WatFeatures = SANDBOX_FEATURES,
  /** `relocatable` writes an object file: 5-byte LEB indices and linking/reloc custom sections. */
  options: { relocatable?: boolean } = {},
): Promise<Uint8Array<ArrayBuffer>> => {
  wabt ??= await wabtInit();
  const module = wabt.parseWat("policy.wat", source, features);
  try {
    module.resolveNames();
    // wabt's typings omit validate's features argument; without it threads, multi-memory etc. fail.
    (module as unknown as { validate(features: WatFeatures): void }).validate(features);
    // A copy owned by an ArrayBuffer, as WebAssembly and Response bodies want.
    return new Uint8Array(module.toBinary({ write_debug_names: true, ...options }).buffer);
  } finally {
    module.destroy();
  }
};
