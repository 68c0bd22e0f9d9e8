/**
 * The wire protocol: close codes and frame parsing. PROTOCOL.md is the reference; keep the
 * two in step.
 */
import type { RejectReason } from "./admission";

/** Close codes the server uses. */
export const Close = {
  /** The client sent `leave`; its departure is recorded (the close is the acknowledgement). */
  LEFT: 1000,
  /** A binary frame: only JSON text frames are spoken. */
  BINARY: 1003,
  /** Not JSON, not an object, or a known type with bad fields. */
  MALFORMED: 1007,
  /** A JSON object whose `type` is missing or unknown. */
  UNKNOWN_TYPE: 1008,
  /** A frame larger than MAX_MESSAGE_BYTES. */
  TOO_BIG: 1009,
  /** Server-side failure. */
  INTERNAL: 1011,
  /** Counters and state were reset by `POST /s/{strategy}/reset`. */
  RESET: 1012,
  /** Rejected with reason `overloaded` (try again later). */
  OVERLOADED: 1013,
  /** Rejected by admission; the close reason is the reject reason. */
  REJECTED: 4001,
} as const;

/** The close code that follows a `rejected` frame with this reason. */
export function closeCodeFor(reason: RejectReason): number {
  return reason === "overloaded" ? Close.OVERLOADED : Close.REJECTED;
}

/** A chat message from a client, validated. */
export interface ChatIn {
  type: "message";
  seq: number;
  ts: number;
  body: string;
}

/** What a client frame turned out to be. */
export type Parsed =
  | { kind: "message"; msg: ChatIn }
  | { kind: "leave" }
  | { kind: "malformed"; why: string }
  | { kind: "unknown"; why: string };

/** Parse a text frame (its size has already been checked). */
export function parseClientFrame(text: string): Parsed {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { kind: "malformed", why: "invalid JSON" };
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    return { kind: "malformed", why: "not a JSON object" };
  }
  const o = v as Record<string, unknown>;
  switch (o.type) {
    case "message": {
      const { seq, ts, body } = o;
      if (typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 0) {
        return { kind: "malformed", why: "seq must be a non-negative integer" };
      }
      if (typeof ts !== "number" || !Number.isFinite(ts)) {
        return { kind: "malformed", why: "ts must be a number" };
      }
      if (typeof body !== "string") return { kind: "malformed", why: "body must be a string" };
      return { kind: "message", msg: { type: "message", seq, ts, body } };
    }
    case "leave":
      return { kind: "leave" };
    default:
      return { kind: "unknown", why: "unknown type" };
  }
}

/** UTF-8 length of a string, computed only when it could matter against `limit`. */
export function exceedsBytes(text: string, limit: number): boolean {
  if (text.length > limit) return true; // every UTF-16 unit is at least one byte
  if (text.length * 3 <= limit) return false; // every UTF-16 unit is at most three bytes
  return new TextEncoder().encode(text).length > limit;
}
