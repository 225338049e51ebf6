/**
 * The `/block/{id}/{service}/...` proxy's refusals, before it looks the block up: a service name that
 * is an Object prototype key is no service, and the path is read raw, whatever the id's encoding.
 */
import { expect, test } from "bun:test";
import type { ControllerContext } from "../../src/controller/context.ts";
import { proxyToBlock } from "../../src/controller/gateway.ts";

const noBlocks = {} as ControllerContext;

test("prototype keys are not block services", async () => {
  for (const service of ["constructor", "__proto__", "toString", "hasOwnProperty"]) {
    await expect(proxyToBlock(noBlocks, "b1", new Request(`http://c/block/b1/${service}/x`))).rejects.toThrow(
      `/block/b1/${service}: not one of rpc, metrics`,
    );
  }
});

test("a percent-encoded block id does not shift the service name", async () => {
  await expect(proxyToBlock(noBlocks, "a b", new Request("http://c/block/a%20b/nope/x"))).rejects.toThrow(
    "/block/a b/nope: not one of",
  );
});
