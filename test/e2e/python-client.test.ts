/**
 * The specification's Python client (examples/python-client/client.py, block-runtime.md's example)
 * against a real block: two sentiment instances and `aios block-runtime` as processes, Python stubs
 * generated from this repository's proto/ at test time into a `protos` package, as the client imports
 * them (`from protos import inference_pb2, inference_pb2_grpc, payload_pb2`).
 *
 * The specification's client sends no token, so the block runs with anonymous access on
 * (AIOS_ANONYMOUS=1, local development); a variant passes `metadata=(("authorization", "Bearer ..."),)`,
 * which the block checks even so (a wrong token is UNAUTHENTICATED).
 *
 * Needs Debian's python3-grpcio, python3-protobuf and python3-grpc-tools for /usr/bin/python3 (.ci/run
 * installs them when it can); skipped without them, so a machine without Python still passes.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { blockRuntimeArgs, type Child, childEnv, hostPort, Processes, ROOT } from "../support/processes.ts";

const PYTHON = "/usr/bin/python3";

/** Whether `code` runs under /usr/bin/python3 (false when there is no such interpreter). */
const pythonRuns = (code: string): boolean => {
  try {
    return Bun.spawnSync([PYTHON, "-c", code], { stdout: "ignore", stderr: "ignore" }).exitCode === 0;
  } catch {
    return false;
  }
};

// The runtime the client needs, and grpc_tools to generate its stubs from our proto files.
const noPython = !pythonRuns("import grpc, google.protobuf, grpc_tools.protoc");

const BLOCK_ID = "sentiment-python";
/** The block runtime's own credential (AIOS_TOKEN), which the metadata variant presents. */
const TOKEN = "aios-e2e-python-token";

/** The specification's call with the token as gRPC metadata, importing client.py's packet. */
const WITH_METADATA = `import os, grpc
import client
from protos import inference_pb2, inference_pb2_grpc

stub = inference_pb2_grpc.InferenceProxyStub(grpc.insecure_channel(client.TARGET))
request = inference_pb2.InferenceMessage(rpc_data=client.create_aios_packet().SerializeToString())
response = stub.infer(request, metadata=(("authorization", "Bearer " + os.environ["AIOS_TOKEN"]),))
print("Inference response:", response.message)
print("instance_id:", response.instance_id)
`;
const procs = new Processes();
let dir = "";
let target = "";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  /** `name: value` lines of the output. */
  fields: Record<string, string>;
}

/** Runs the client (copied into `dir`, beside its generated `protos`) with `args` and `env`. */
const runClient = async (
  args: string[],
  env: Record<string, string> = {},
  script = "client.py",
): Promise<Run> => {
  const base = childEnv(env);
  delete base.PYTHONHOME;
  // gRPC's C core honours proxy variables: the block is on loopback, reached directly.
  for (const k of ["http_proxy", "https_proxy", "grpc_proxy", "HTTP_PROXY", "HTTPS_PROXY"]) delete base[k];
  const proc = Bun.spawn([PYTHON, join(dir, script), ...args], {
    cwd: dir,
    env: { ...base, PYTHONPATH: dir, PYTHONDONTWRITEBYTECODE: "1" },
    stdout: "pipe",
    stderr: "pipe",
    timeout: 20_000,
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  const fields: Record<string, string> = {};
  for (const line of stdout.split("\n")) {
    const at = line.indexOf(": ");
    if (at > 0) fields[line.slice(0, at)] = line.slice(at + 2);
  }
  return { code, stdout, stderr, fields };
};

const result = (run: Run) => JSON.parse(run.fields.result ?? "null") as Record<string, unknown>;

describe("the specification's Python client against aios block-runtime", () => {
  beforeAll(async () => {
    if (noPython) return;
    dir = mkdtempSync(join(tmpdir(), "aios-python-client-"));
    // `-Iprotos=proto` places the files in a `protos` package, so the generated gRPC module imports
    // `from protos import inference_pb2` (plain `-Iproto` would give a top-level `import inference_pb2`).
    const gen = Bun.spawnSync(
      [
        PYTHON,
        "-m",
        "grpc_tools.protoc",
        `-Iprotos=${join(ROOT, "proto")}`,
        `--python_out=${dir}`,
        `--grpc_python_out=${dir}`,
        "protos/inference.proto",
        "protos/payload.proto",
      ],
      { cwd: ROOT, stdout: "pipe", stderr: "pipe" },
    );
    if (gen.exitCode !== 0) throw new Error(`grpc_tools.protoc failed: ${gen.stderr.toString()}`);
    copyFileSync(join(ROOT, "examples/python-client/client.py"), join(dir, "client.py"));
    writeFileSync(join(dir, "with_metadata.py"), WITH_METADATA);

    const started: [string, string][] = await Promise.all(
      ["py-0", "py-1"].map(async (id): Promise<[string, string]> => {
        const child: Child = procs.bun(id, ["examples/sentiment/instance.ts"], {
          env: { AIOS_INSTANCE_ID: id, AIOS_BLOCK_ID: BLOCK_ID, AIOS_INSTANCE_PORT: "0" },
        });
        const { instance } = await child.listening(["instance"]);
        return [id, instance!];
      }),
    );
    const block = procs.bun(
      "block-runtime",
      ["run", "src/cli/main.ts", ...blockRuntimeArgs(BLOCK_ID, started)],
      {
        env: { AIOS_ANONYMOUS: "1", AIOS_TOKEN: TOKEN },
      },
    );
    const { grpc } = await block.listening(["grpc"]);
    target = hostPort(grpc!);
  });

  afterAll(async () => {
    await procs.stopAll();
    expect(procs.running.map((c) => c.name)).toEqual([]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test.skipIf(noPython)("the stubs are generated from proto/ into the protos package", () => {
    expect(readdirSync(join(dir, "protos")).sort()).toEqual([
      "inference_pb2.py",
      "inference_pb2_grpc.py",
      "payload_pb2.py",
      "payload_pb2_grpc.py",
    ]);
  });

  test.skipIf(noPython)(
    "the specification's request, unchanged: message True and the classifier's answer",
    async () => {
      const run = await runClient([target]);
      expect(run.stderr).toBe("");
      expect(run.code).toBe(0);
      // The specification's own line: `print("Inference response:", response.message)`.
      expect(run.stdout.split("\n")[0]).toBe("Inference response: True");
      expect(run.fields.error).toBe("");
      expect(["py-0", "py-1"]).toContain(run.fields.instance_id!);
      // '{"input": "Hello Block"}': neither word was trained on, so an even split, under min_confidence.
      expect(result(run)).toMatchObject({
        label: "uncertain",
        tokens: ["hello", "block"],
        probabilities: { positive: 0.5, negative: 0.5 },
      });
    },
  );

  test.skipIf(noPython)(
    "a review through the same client is classified (target from the environment)",
    async () => {
      const run = await runClient([], {
        AIOS_BLOCK_TARGET: target,
        AIOS_SESSION_ID: "python-negative",
        AIOS_TASK_DATA: JSON.stringify({ text: "Terrible app, it keeps crashing and support is useless" }),
      });
      expect(run.code).toBe(0);
      expect(run.fields["Inference response"]).toBe("True");
      const r = result(run);
      expect(r).toMatchObject({
        label: "negative",
        best_label: "negative",
        instance_id: run.fields.instance_id,
      });
      expect((r.probabilities as { negative: number }).negative).toBeGreaterThan(0.9);

      const positive = await runClient([target], {
        AIOS_SESSION_ID: "python-positive",
        AIOS_TASK_DATA: JSON.stringify({ text: "A wonderful hotel with a stunning view" }),
      });
      expect(result(positive)).toMatchObject({ label: "positive" });
    },
  );

  test.skipIf(noPython)("a refusal is message False with the instance's reason", async () => {
    const run = await runClient([target], {
      AIOS_SESSION_ID: "python-empty",
      AIOS_TASK_DATA: JSON.stringify({ text: "" }),
    });
    expect(run.code).toBe(0);
    expect(run.fields["Inference response"]).toBe("False");
    expect(run.fields.error).toBe("invalid_input: data.text is empty");
  });

  test.skipIf(noPython)(
    "the token as gRPC metadata: checked, and a wrong one is UNAUTHENTICATED",
    async () => {
      const run = await runClient(
        [target],
        { AIOS_TOKEN: TOKEN, AIOS_SESSION_ID: "python-token" },
        "with_metadata.py",
      );
      expect(run.stderr).toBe("");
      expect(run.code).toBe(0);
      expect(run.fields["Inference response"]).toBe("True");
      expect(["py-0", "py-1"]).toContain(run.fields.instance_id!);

      const wrong = await runClient(
        [target],
        { AIOS_TOKEN: "not-the-token", AIOS_SESSION_ID: "python-wrong-token" },
        "with_metadata.py",
      );
      expect(wrong.code).not.toBe(0);
      expect(wrong.stderr).toContain("StatusCode.UNAUTHENTICATED");
      expect(wrong.stderr).toContain("the token is not valid");
    },
  );

  test.skipIf(noPython)("a packet the block cannot read is INVALID_ARGUMENT naming the field", async () => {
    const run = await runClient([target], { AIOS_SESSION_ID: "python-bad", AIOS_TASK_DATA: "not json" });
    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain("StatusCode.INVALID_ARGUMENT");
    expect(run.stderr).toContain("data is not valid JSON");
  });
});
