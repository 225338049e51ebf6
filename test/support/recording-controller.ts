/**
 * Stands in for the cluster controller (src/controller, a later issue) in the block runtime's tests:
 * a real HTTP server speaking the controller's `/executeAction` and `GET /blocks/{id}` contract
 * (src/controller/client.ts), recording every action and answering what the test sets. Like the
 * controller, it answers `GET /auth/whoami` (where workloads check tokens) from `principals`.
 */
export interface RecordedAction {
  action: string;
  data: Record<string, unknown>;
}

export interface RecordedPrincipal {
  id: string;
  name: string;
  scopes: string[];
}

export interface RecordingController {
  url: string;
  actions: RecordedAction[];
  /** The Authorization header of the last action (null: none): the credential its caller presented. */
  lastAuthorization: string | null;
  /** Documents answered by `GET /blocks/{id}`. */
  blocks: Map<string, unknown>;
  /** When set, `/executeAction` answers this status with an error body. */
  failWith: number | null;
  /** Tokens `GET /auth/whoami` knows (any other is a 401), as the real controller's store would. */
  principals: Map<string, RecordedPrincipal>;
  stop(): Promise<void>;
}

export const startRecordingController = (): RecordingController => {
  const state: Omit<RecordingController, "url" | "stop"> = {
    actions: [],
    lastAuthorization: null,
    blocks: new Map(),
    failWith: null,
    principals: new Map(),
  };
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    async fetch(req) {
      const url = new URL(req.url);
      if (req.method === "POST" && url.pathname === "/executeAction") {
        const body = (await req.json()) as RecordedAction;
        state.actions.push(body);
        state.lastAuthorization = req.headers.get("authorization");
        if (state.failWith !== null) {
          return Response.json(
            { error: { code: "refused", message: "refused by the test", details: null } },
            { status: state.failWith },
          );
        }
        return Response.json({ success: true, action: body.action });
      }
      const block = url.pathname.match(/^\/blocks\/([^/]+)$/);
      if (req.method === "GET" && block) {
        const doc = state.blocks.get(decodeURIComponent(block[1] ?? ""));
        return doc === undefined
          ? Response.json({ error: { code: "not_found", message: "no such block" } }, { status: 404 })
          : Response.json(doc);
      }
      if (req.method === "GET" && url.pathname === "/auth/whoami") {
        const token = /^Bearer (\S+)$/i.exec(req.headers.get("authorization") ?? "")?.[1];
        const principal = token === undefined ? undefined : state.principals.get(token);
        return principal
          ? Response.json({ principal })
          : Response.json(
              { error: { code: "unauthenticated", message: "the token is not valid", details: null } },
              { status: 401 },
            );
      }
      return new Response("not found", { status: 404 });
    },
  });
  return Object.assign(state, {
    url: `http://127.0.0.1:${server.port}`,
    stop: () => server.stop(true),
  });
};
