/**
 * The registry (`registry:<strategy>`): the names of the room-hosting objects a strategy
 * has used, so the stats and reset endpoints can reach them. A room object registers once
 * per start, before its first join (one RPC; one storage row the first time).
 */
import { DurableObject } from "cloudflare:workers";
import type { Env } from "./env";

export class Registry extends DurableObject<Env> {
  private names = new Set<string>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    ctx.blockConcurrencyWhile(async () => {
      const rows = await ctx.storage.list({ prefix: "o:" });
      for (const k of rows.keys()) this.names.add(k.slice(2));
    });
  }

  /** RPC: object `name` exists. */
  async register(name: string): Promise<void> {
    if (this.names.has(name)) return;
    this.names.add(name);
    await this.ctx.storage.put(`o:${name}`, 1);
  }

  /** RPC: every registered object name, sorted. */
  async list(): Promise<string[]> {
    return [...this.names].sort();
  }
}
