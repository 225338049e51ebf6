/**
 * A grpc-js client of InferenceProxy, built from the generated message schemas (no proto loader):
 * the method path of a package-less service is `/InferenceProxy/infer`, as the Python client uses.
 * With `token`, every call carries the `authorization: Bearer <token>` metadata; `bearer(token)` is the
 * same for Connect's transports (`interceptors: [bearer(token)]`).
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { Interceptor } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import {
  type InferenceMessage,
  InferenceMessageSchema,
  type InferenceResponse,
  InferenceResponseSchema,
} from "../../src/gen/inference_pb.ts";

/** A Connect interceptor adding `authorization: Bearer <token>` to every call. */
export const bearer =
  (token: string): Interceptor =>
  (next) =>
  (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };

export const grpcJsInferenceClient = (address: string, options: { token?: string } = {}) => {
  const Client = grpc.makeGenericClientConstructor(
    {
      infer: {
        path: "/InferenceProxy/infer",
        requestStream: false,
        responseStream: false,
        requestSerialize: (m: InferenceMessage) => Buffer.from(toBinary(InferenceMessageSchema, m)),
        requestDeserialize: (b: Buffer) => fromBinary(InferenceMessageSchema, b),
        responseSerialize: (m: InferenceResponse) => Buffer.from(toBinary(InferenceResponseSchema, m)),
        responseDeserialize: (b: Buffer) => fromBinary(InferenceResponseSchema, b),
      },
    },
    "InferenceProxy",
  );
  const client = new Client(address, grpc.credentials.createInsecure());
  const infer = client.infer?.bind(client);
  if (!infer) throw new Error("the generic client has no infer method");
  const metadata = (): grpc.Metadata => {
    const m = new grpc.Metadata();
    if (options.token !== undefined) m.set("authorization", `Bearer ${options.token}`);
    return m;
  };
  return {
    /** Resolves with the response, or rejects with grpc-js's ServiceError. */
    infer: (rpcData: Uint8Array) =>
      new Promise<InferenceResponse>((resolve, reject) =>
        infer(
          create(InferenceMessageSchema, { rpcData }),
          metadata(),
          (err: grpc.ServiceError | null, res: InferenceResponse) => (err ? reject(err) : resolve(res)),
        ),
      ),
    close: () => client.close(),
  };
};
