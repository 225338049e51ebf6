/**
 * One collection shared by several owners (the cluster controllers of one PostgreSQL), each seeing
 * only its own documents: ids are stored as `<scope>/<id>` and every document carries `scope`, so
 * owners never read, adopt or delete each other's records. Callers keep using their plain ids.
 */
import type { Doc, DocumentCollection } from "./collection.ts";

export class ScopedCollection {
  readonly #prefix: string;

  constructor(
    readonly inner: DocumentCollection,
    readonly scope: string,
  ) {
    this.#prefix = `${scope}/`;
  }

  #id(id: string): string {
    return `${this.#prefix}${id}`;
  }

  #out(doc: Doc | null): Doc | null {
    return (
      doc && { ...doc, id: doc.id.startsWith(this.#prefix) ? doc.id.slice(this.#prefix.length) : doc.id }
    );
  }

  /** The owner's documents matching `filter`; a plain `id` in it is the caller's id. */
  #filter(filter: unknown): unknown {
    const f = (filter ?? {}) as Record<string, unknown>;
    const own = typeof f.id === "string" ? { ...f, id: this.#id(f.id) } : f;
    return { $and: [{ scope: this.scope }, own] };
  }

  async get(id: string): Promise<Doc | null> {
    return this.#out(await this.inner.get(this.#id(id)));
  }

  async find(filter: unknown, options?: unknown): Promise<Doc[]> {
    return (await this.inner.find(this.#filter(filter), options)).map((d) => this.#out(d) as Doc);
  }

  async count(filter: unknown): Promise<number> {
    return this.inner.count(this.#filter(filter));
  }

  async insert(doc: Doc): Promise<Doc> {
    return this.#out(await this.inner.insert({ ...doc, id: this.#id(doc.id), scope: this.scope })) as Doc;
  }

  async upsert(id: string, doc: Doc): Promise<Doc> {
    return this.#out(
      await this.inner.upsert(this.#id(id), { ...doc, id: this.#id(id), scope: this.scope }),
    ) as Doc;
  }

  async update(id: string, update: unknown): Promise<Doc | null> {
    return this.#out(await this.inner.update(this.#id(id), update));
  }

  async updateMany(filter: unknown, update: unknown): Promise<number> {
    return this.inner.updateMany(this.#filter(filter), update);
  }

  async delete(id: string): Promise<boolean> {
    return this.inner.delete(this.#id(id));
  }
}
