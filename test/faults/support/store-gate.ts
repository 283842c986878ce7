/**
 * A store gate for the fault suite: an HTTP proxy between the `fleetscore worker` processes and the S3 server
 * (MinIO) that can hold one chosen request, so a fault is aimed at an exact point of an activity (a plan file
 * being written, the manifest written but its reply not yet back) without any hook in production code. Each worker
 * reaches the store through a port of its own, so a held request names the worker that sent it.
 */
import {
  Agent,
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';

/** One S3 request as the gate sees it: which listener (worker) sent it, the HTTP method and the object key. */
export interface StoreRequest {
  /** The label the request's port was opened with (one per worker). */
  listener: string;
  method: string;
  /** The object key in the bucket; for a ListObjectsV2 request the listed prefix. */
  key: string;
  /** Whether the request was a ListObjectsV2. */
  list: boolean;
}

/** A request that reached the server, with the status the server answered. */
export interface ForwardedRequest extends StoreRequest {
  status: number;
}

/** Where a held request waits: before it is forwarded, or after the server answered it (the reply held back). */
export type HoldPhase = 'request' | 'response';

/** A request the gate holds. Release it to let it go on, or drop it to reset its connection. */
export interface HeldRequest extends StoreRequest {
  /** Lets the request go on; resolves with the status the worker got, or undefined when its connection is gone. */
  release(): Promise<number | undefined>;
  /** Resets the worker's connection, as a network failure would; nothing more of the request happens. */
  drop(): void;
}

interface Upstream {
  status: number;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

interface Hold {
  match: (r: StoreRequest) => boolean;
  phase: HoldPhase;
  caught: (held: HeldRequest) => void;
}

/** Headers that belong to one connection, not to the request. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'upgrade']);

/**
 * The proxy. Requests are forwarded byte for byte with their own `Host` header, so the SigV4 signature the worker
 * computed for the gate's address still verifies at the server. A request whose forwarding fails (the server is
 * down) has its connection reset, as the server's own would be.
 */
export class StoreGate {
  /** Every request the server answered, in order. */
  readonly forwarded: ForwardedRequest[] = [];
  private readonly servers: Server[] = [];
  private readonly holds: Hold[] = [];
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 64 });
  private readonly upstream: URL;

  constructor(upstream: string) {
    this.upstream = new URL(upstream);
  }

  /** Opens a new port whose requests carry `label`; returns its endpoint (`http://127.0.0.1:<port>`). */
  async listen(label: string): Promise<string> {
    // A worker killed mid-request leaves a broken stream behind: its connection is simply closed.
    const server = createServer((req, res) => void this.handle(label, req, res).catch(() => req.socket.destroy()));
    await new Promise<void>((done, fail) => {
      server.once('error', fail);
      server.listen(0, '127.0.0.1', () => done());
    });
    this.servers.push(server);
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  /**
   * Holds the first request that matches (only the first: a retry of it passes) at the given phase, and resolves
   * when it is caught. Requests that do not match pass meanwhile.
   */
  hold(match: (r: StoreRequest) => boolean, phase: HoldPhase = 'request'): Promise<HeldRequest> {
    return new Promise((caught) => this.holds.push({ match, phase, caught }));
  }

  /** How many forwarded requests matched and got a 2xx answer from the server, from `forwarded[since]` on. */
  succeeded(match: (r: StoreRequest) => boolean, since = 0): number {
    return this.forwarded.slice(since).filter((r) => r.status >= 200 && r.status < 300 && match(r)).length;
  }

  /** Forgets holds that caught nothing (a test that failed before its request came), so they catch no later one. */
  cancelHolds(): void {
    this.holds.length = 0;
  }

  /** Closes every port and connection. */
  async close(): Promise<void> {
    for (const s of this.servers) s.closeAllConnections();
    await Promise.all(this.servers.map((s) => new Promise((done) => s.close(done))));
    this.agent.destroy();
  }

  private async handle(listener: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const request = describe(listener, req);
    // What the worker got: the status written to it, or undefined when its connection was reset or gone.
    let settle!: (status: number | undefined) => void;
    const outcome = new Promise<number | undefined>((done) => (settle = done));
    const gone = () => res.destroyed || req.socket.destroyed;

    const before = this.take(request, 'request');
    if (before) await this.wait(before, request, req, outcome);
    const answer = gone() ? undefined : await this.forward(request, req, body).catch(() => undefined);
    const after = answer && !gone() ? this.take(request, 'response') : undefined;
    if (after) await this.wait(after, request, req, outcome);

    if (gone()) return settle(undefined);
    if (!answer) {
      req.socket.destroy();
      return settle(undefined);
    }
    res.writeHead(answer.status, answer.headers);
    res.end(answer.body);
    settle(answer.status);
  }

  /** Removes and returns the first hold that catches this request at this phase. */
  private take(request: StoreRequest, phase: HoldPhase): Hold | undefined {
    const index = this.holds.findIndex((h) => h.phase === phase && h.match(request));
    return index >= 0 ? this.holds.splice(index, 1)[0] : undefined;
  }

  /** Hands the held request to the test and waits until the test releases or drops it. */
  private wait(
    hold: Hold,
    request: StoreRequest,
    req: IncomingMessage,
    outcome: Promise<number | undefined>,
  ): Promise<void> {
    return new Promise<void>((go) =>
      hold.caught({
        ...request,
        release: () => {
          go();
          return outcome;
        },
        drop: () => {
          req.socket.destroy();
          go();
        },
      }),
    );
  }

  private forward(request: StoreRequest, req: IncomingMessage, body: Buffer): Promise<Upstream> {
    const headers = Object.fromEntries(Object.entries(req.headers).filter(([k]) => !HOP_BY_HOP.has(k)));
    return new Promise((done, fail) => {
      const out = httpRequest(
        {
          host: this.upstream.hostname,
          port: this.upstream.port,
          method: req.method,
          path: req.url,
          headers,
          agent: this.agent,
        },
        (answer) => {
          const chunks: Buffer[] = [];
          answer.on('data', (c: Buffer) => chunks.push(c));
          answer.once('error', fail);
          answer.once('end', () => {
            const status = answer.statusCode ?? 502;
            this.forwarded.push({ ...request, status });
            const headers = Object.fromEntries(Object.entries(answer.headers).filter(([k]) => !HOP_BY_HOP.has(k)));
            done({ status, headers, body: Buffer.concat(chunks) });
          });
        },
      );
      out.once('error', fail);
      out.end(body);
    });
  }
}

/** The method and object key of a path-style S3 request (`/bucket/key?query`). */
function describe(listener: string, req: IncomingMessage): StoreRequest {
  const url = new URL(req.url ?? '/', 'http://gate');
  const [, , ...rest] = url.pathname.split('/');
  const key = rest.map((s) => decodeURIComponent(s)).join('/');
  const list = key === '' && url.searchParams.get('list-type') === '2';
  return { listener, method: req.method ?? 'GET', key: list ? (url.searchParams.get('prefix') ?? '') : key, list };
}
